"""Entry point of a worker process (workers/processes.py starts it as a script, never imports it).

    python -I child_main.py PACKAGE_PARENT PACKAGE_NAME MODULE:FUNCTION

The add-on's package is imported by its folder's name from its parent folder (inside Blender it
is ``bl_ext.<repository>.posebridge``, a name only Blender can import), then the worker serves
MODULE:FUNCTION calls until its parent closes the pipe.
"""
import importlib
import sys

if __name__ == "__main__":
    parent, package, target = sys.argv[1:4]
    sys.path.insert(0, parent)  # (run with -I: this script's own folder is not on the path)
    processes = importlib.import_module(f"{package}.workers.processes")
    sys.exit(processes.serve(package, target))

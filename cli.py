"""PoseBridge batch entry point.

Inside Blender:     blender -b shot.blend --python cli.py -- poses --out DIR [...]
With bpy a module:  python cli.py --blend shot.blend poses --out DIR [...]
The demo:           python cli.py demo --out demo_out

This file only finds the arguments, loads the extension from the folder it sits in (under the
name ``posebridge``, whatever the folder is called) and opens the .blend in module mode; the
commands themselves live in ``batch.py``.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_extension():
    if "posebridge" in sys.modules:
        return sys.modules["posebridge"]
    spec = importlib.util.spec_from_file_location(
        "posebridge", HERE / "__init__.py", submodule_search_locations=[str(HERE)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["posebridge"] = module
    spec.loader.exec_module(module)
    return module


def split_arguments(argv: list[str]) -> tuple[str | None, list[str]]:
    """(blend file to open or None, command arguments).

    Blender passes its own arguments first and ours after ``--``; in module mode ours come
    straight after the script name, optionally led by ``--blend FILE``.
    """
    if "--" in argv:
        return None, argv[argv.index("--") + 1:]
    args = argv[1:]
    if args[:1] == ["--blend"]:
        if len(args) < 2:
            raise SystemExit("posebridge: error: --blend needs a .blend file")
        return args[1], args[2:]
    return None, args


def main(argv: list[str]) -> int:
    blend, command_args = split_arguments(argv)
    extension = load_extension()
    import bpy

    if blend is not None:
        if not Path(blend).is_file():
            print(f"posebridge: error: no such .blend file: {blend}", file=sys.stderr)
            return 2
        bpy.ops.wm.open_mainfile(filepath=str(Path(blend).resolve()))
    if not hasattr(bpy.types.Object, "posebridge"):
        extension.register()  # the .blend's rig maps and settings need the extension's properties
    from posebridge import batch

    return batch.main(command_args)


def exit_now(code: int) -> None:
    """Leave with ``code``. With bpy as a module, skip the interpreter's exit handlers: bpy 4.2's
    crash in them (after Rigify was enabled, as the demo does) would turn success into a
    segfault. Inside the Blender program a normal exit is safe."""
    import bpy

    if bpy.app.binary_path == "":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv))

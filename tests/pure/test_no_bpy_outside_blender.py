"""The pure layers must import without Blender: the backend and outside tools import them."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = f"""
import sys
sys.modules["bpy"] = None  # any 'import bpy' now raises ImportError
sys.path.insert(0, {str(REPO)!r})
from cli import load_extension
load_extension()
import importlib, pkgutil
import posebridge.draw as draw
import posebridge.generate as generate
import posebridge.pose as pose
import posebridge.retarget as retarget
for package in (pose, draw, retarget, generate):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
import posebridge.batch
print("ok")
"""


def test_package_and_pose_modules_import_without_bpy():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

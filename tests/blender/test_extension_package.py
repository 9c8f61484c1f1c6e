"""The extension as a user gets it: build the zip with Blender's own builder, install it through
Blender's extensions API, check it registers, run its main operator, uninstall it.

The zip is installed into a temporary *local* extension repository created for this module
(``bpy.context.preferences.extensions.repos.new(..., custom_directory=tmp)``), never into the
user's ``user_default`` repository, and is uninstalled again with the repository removed and
factory settings reloaded, so later tests in the same process see no trace of it.
"""
from __future__ import annotations

import importlib.util
import json
import struct
import sys
import zipfile
from pathlib import Path

import pytest

import rigs

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

REPO = Path(__file__).resolve().parents[2]
PKG_ID = "posebridge"
TEST_REPO_MODULE = "posebridge_pkgtest"  # the temporary extension repository's module name
ADDON_MODULE = f"bl_ext.{TEST_REPO_MODULE}.{PKG_ID}"
OPERATOR_TYPE = "POSEBRIDGE_OT_render_pose_maps"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Development-only paths that must never ship in the zip (see [build] in blender_manifest.toml).
EXCLUDED_TOP = ("tests/", "bench/", "docs/", "tools/", "train/", "deploy/", "build/", "dist/", ".ci/", ".git/")
EXCLUDED_FILES = ("cli.py", "batch.py", "batch_parser.py", "pyproject.toml", ".gitignore")
# Folders whose Python files are all part of the add-on and must ship. backend/ ships too:
# "Start Local Backend" runs it with another Python (torch is never imported by Blender).
PACKAGE_DIRS = ("pose", "draw", "retarget", "render", "operators", "panels", "generate", "backend", "workers")
# Data files the add-on loads at run time (the learned lifter's weights).
PACKAGE_DATA = ("retarget/lifter_weights.npz",)


def _load_build_tool():
    spec = importlib.util.spec_from_file_location(
        "posebridge_build_extension", REPO / "tools" / "build_extension.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_tool = _load_build_tool()


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory) -> Path:
    """The extension zip, built once per session by ``blender_ext.py build``."""
    return build_tool.build(tmp_path_factory.mktemp("dist"))


def _repo_index(module: str) -> int | None:
    for index, repo in enumerate(bpy.context.preferences.extensions.repos):
        if repo.module == module:
            return index
    return None


def _addon_enabled() -> bool:
    return ADDON_MODULE in bpy.context.preferences.addons


def _operator_registered() -> bool:
    try:
        bpy.ops.posebridge.render_pose_maps.get_rna_type()
    except (KeyError, AttributeError):
        return False
    return hasattr(bpy.types, OPERATOR_TYPE)


def _uninstall() -> None:
    """Uninstall the package and drop the temporary repository (idempotent)."""
    index = _repo_index(TEST_REPO_MODULE)
    if index is not None:
        if _addon_enabled() or (Path(bpy.context.preferences.extensions.repos[index].directory) / PKG_ID).exists():
            bpy.ops.extensions.package_uninstall(repo_index=index, pkg_id=PKG_ID)
        repos = bpy.context.preferences.extensions.repos
        repos.remove(repos[index])
    for name in [m for m in sys.modules if m == ADDON_MODULE or m.startswith(ADDON_MODULE + ".")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def installed(built_zip, tmp_path_factory):
    """Install the zip into a temporary local repository with enable-on-install; uninstall after."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    repo_dir = tmp_path_factory.mktemp("extension_repo")
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="PoseBridge package test", module=TEST_REPO_MODULE, custom_directory=str(repo_dir))
    assert repo.directory == str(repo_dir)
    try:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(built_zip), repo=TEST_REPO_MODULE, enable_on_install=True
        )
        assert result == {"FINISHED"}, f"package_install_files returned {result}"
        yield repo_dir / PKG_ID
    finally:
        _uninstall()
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_manifest_validates():
    build_tool.validate(REPO)


def test_zip_validates(built_zip):
    assert built_zip.name == f"{PKG_ID}-{build_tool.manifest()['version']}.zip"
    build_tool.validate(built_zip)


def test_zip_contents(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        names = zf.namelist()
        manifest = zf.read("blender_manifest.toml").decode("utf-8")
    assert "__init__.py" in names
    assert "blender_registration.py" in names
    assert f'id = "{PKG_ID}"' in manifest
    leaked = [
        n for n in names
        if n.startswith(EXCLUDED_TOP) or n in EXCLUDED_FILES or "__pycache__/" in n or n.endswith(".pyc")
        or n.endswith(".zip")
    ]
    assert not leaked, f"development files in the zip: {leaked}"
    # Nothing the add-on needs may be excluded by an over-broad pattern.
    missing = [
        str(p.relative_to(REPO)) for d in PACKAGE_DIRS for p in sorted((REPO / d).rglob("*.py"))
        if "__pycache__" not in p.parts and str(p.relative_to(REPO)) not in names
    ] + [name for name in PACKAGE_DATA if name not in names]
    assert not missing, f"add-on files missing from the zip: {missing}"


def test_install_enables_addon(installed):
    assert (installed / "blender_manifest.toml").is_file()
    assert (installed / "__init__.py").is_file()
    modules = [a.module for a in bpy.context.preferences.addons if a.module.endswith("." + PKG_ID)]
    assert modules == [ADDON_MODULE], f"enabled PoseBridge add-ons: {modules}"
    assert ADDON_MODULE in sys.modules


def test_operator_registered(installed):
    assert _operator_registered(), "bpy.ops.posebridge.render_pose_maps is not registered by the add-on"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_render_pose_maps_writes_files(installed, tmp_path):
    assert _operator_registered()
    rig = rigs.build_animated_mixamo_rig()  # quick to build and needs no other add-on
    scene = bpy.context.scene
    assert _addon_enabled(), "building the test rig disabled the add-on (factory settings reloaded?)"
    assert rig.type == "ARMATURE" and rig.name in scene.objects
    if scene.camera is None:
        rigs.add_front_camera(scene, "PackageTestCamera")
    scene.frame_end = scene.frame_start + 2  # three frames are enough here
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 160, 120, 100
    frames = range(scene.frame_start, scene.frame_end + 1)

    out = tmp_path / "out"
    scene.posebridge.output_dir = str(out)
    result = bpy.ops.posebridge.render_pose_maps()
    assert result == {"FINISHED"}, f"render_pose_maps returned {result}"

    pngs = sorted(out.glob("pose_*.png"))
    jsons = sorted((out / "keypoints").glob("pose_*_keypoints.json"))
    assert [p.name for p in pngs] == [f"pose_{f:04d}.png" for f in frames], sorted(
        str(p.relative_to(out)) for p in out.rglob("*"))
    assert [j.name for j in jsons] == [f"pose_{f:04d}_keypoints.json" for f in frames]
    for png in pngs:
        assert _png_size(png) == (160, 120)
    people = []
    for path in jsons:
        data = json.loads(path.read_text())
        assert isinstance(data.get("people"), list), f"{path.name} has no people list"
        people += data["people"]
    assert len(people) == len(frames), "expected the one character in every frame's keypoint file"
    for person in people:
        body = person["pose_keypoints_2d"]
        assert len(body) == 18 * 3, "OpenPose body: 18 keypoints, (x, y, confidence) each"
        assert any(c > 0 for c in body[2::3]), "no body keypoint visible"


def test_worker_processes_import_the_installed_package(installed, tmp_path):
    """Inside Blender the add-on is ``bl_ext.<repository>.posebridge``, a name a child process
    cannot import: the pose-map job's workers import it by folder name and draw the same maps."""
    pose_map_run = importlib.import_module(f"{ADDON_MODULE}.render.pose_map_run")
    pose_maps = importlib.import_module(f"{ADDON_MODULE}.render.pose_maps")
    processes = importlib.import_module(f"{ADDON_MODULE}.workers.processes")
    with processes.WorkerProcesses("draw.map_frame:write_plain", 1) as workers:
        with pytest.raises(processes.WorkerError, match="KeyError"):  # the child ran write_plain
            workers.submit({}).result(timeout=60)
    rigs.build_animated_mixamo_rig()
    scene = bpy.context.scene
    if scene.camera is None:
        rigs.add_front_camera(scene, "PackageTestCamera")
    scene.frame_end = scene.frame_start + 5
    files = {}
    for workers in (0, 2):
        job = pose_maps.plan_job(scene, output_dir=str(tmp_path / f"w{workers}"), resolution=(160, 120),
                                 hands=True, face=True)
        assert pose_map_run.render_pose_maps(scene, job, workers=workers).frames_written == 6
        files[workers] = {p.name: p.read_bytes() for p in (tmp_path / f"w{workers}").rglob("*") if p.is_file()}
    assert len(files[2]) == 6 + 6 + 1 and files[2] == files[0]


def test_uninstall_removes_addon(installed):
    _uninstall()
    assert not _addon_enabled()
    assert not [a.module for a in bpy.context.preferences.addons if a.module.endswith("." + PKG_ID)]
    assert not hasattr(bpy.types, OPERATOR_TYPE), "uninstall left the operator registered"
    assert not installed.exists(), "uninstall left the package folder behind"
    assert _repo_index(TEST_REPO_MODULE) is None

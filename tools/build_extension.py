#!/usr/bin/env python3
"""Build the installable PoseBridge extension zip with Blender's own extension builder.

Blender ships its extension command line tool, ``blender_ext.py``, inside the ``bpy`` wheel
(``<site-packages>/bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py``). This script
finds it beside the ``bpy`` of the interpreter that runs it (without importing ``bpy``, which
would start Blender), validates the manifest and builds ``posebridge-<version>.zip``::

    python tools/build_extension.py              # -> dist/posebridge-0.1.0.zip
    python tools/build_extension.py --out /tmp/x # -> /tmp/x/posebridge-0.1.0.zip

What goes into the zip is decided by ``[build] paths_exclude_pattern`` in
``blender_manifest.toml``. Importable: ``build(out_dir) -> Path``, ``validate(path)``,
``find_blender_ext()``.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "dist"
_CLI_REL = Path("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")


class BuildError(RuntimeError):
    """blender_ext.py could not be found, or it reported a failure."""


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def _version_dir(cli_path: Path) -> Path:
    """<site-packages>/bpy/<version> from <that>/scripts/addons_core/bl_pkg/cli/blender_ext.py."""
    return cli_path.parents[len(_CLI_REL.parts) - 1]


def find_blender_ext() -> Path:
    """Path of ``blender_ext.py`` inside the ``bpy`` package importable by this interpreter."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            f"bpy is not installed for {sys.executable}; "
            "run this with a venv that has bpy (see tools/setup_venvs.sh)"
        )
    candidates = []
    for location in spec.submodule_search_locations:
        for version_dir in Path(location).iterdir():
            if re.fullmatch(r"\d+\.\d+", version_dir.name) and (version_dir / _CLI_REL).is_file():
                candidates.append(version_dir / _CLI_REL)
    if not candidates:
        raise BuildError(f"no {_CLI_REL} under bpy at {list(spec.submodule_search_locations)}")
    # A bpy wheel holds exactly one version folder; take the newest if there were ever more.
    return max(candidates, key=lambda p: _version_key(_version_dir(p).name))


def valid_tags_file() -> Path | None:
    """Blender's list of valid tags, which ``blender --command extension build`` checks against."""
    tags = _version_dir(find_blender_ext()) / "scripts" / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return tags if tags.is_file() else None


def manifest(source_dir: Path = REPO) -> dict:
    with open(Path(source_dir) / "blender_manifest.toml", "rb") as fh:
        return tomllib.load(fh)


def _run(args: list[str]) -> str:
    tags = valid_tags_file()
    # Check tags as Blender's own `blender --command extension build/validate` does.
    cmd = [sys.executable, str(find_blender_ext()), *args, f"--valid-tags={tags or ''}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    # blender_ext.py reports fatal errors as "FATAL_ERROR: ..." and exits non-zero.
    if proc.returncode != 0 or "FATAL_ERROR" in output:
        raise BuildError(
            f"blender_ext.py {args[0]} failed: {output}\n(exit {proc.returncode} of: {' '.join(cmd)})"
        )
    return output


def validate(path: Path | str = REPO) -> str:
    """``blender_ext.py validate`` on a source folder or a built zip; raises BuildError if invalid."""
    return _run(["validate", str(path)])


def build(out_dir: Path | str = DEFAULT_OUT, source_dir: Path | str = REPO) -> Path:
    """Validate the manifest, build the zip into ``out_dir`` and return the zip's path."""
    source_dir = Path(source_dir).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = manifest(source_dir)
    zip_path = out_dir / f"{meta['id']}-{meta['version']}.zip"
    if zip_path.exists():
        zip_path.unlink()  # never hand back a stale archive if the builder fails silently
    validate(source_dir)
    _run(["build", "--source-dir", str(source_dir), "--output-dir", str(out_dir)])
    if not zip_path.is_file():
        raise BuildError(f"blender_ext.py build reported success but {zip_path} is missing")
    validate(zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--list", action="store_true", help="also list the files in the zip")
    args = parser.parse_args(argv)
    try:
        zip_path = build(args.out)
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    if args.list:
        import zipfile

        with zipfile.ZipFile(zip_path) as zf:
            for name in zf.namelist():
                print(f"  {name}", file=sys.stderr)
    print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

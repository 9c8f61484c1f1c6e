# shellcheck shell=bash
# Create or reuse the test virtual environments: one per supported Blender (bpy) release, and one
# for the generation backend (torch, diffusers).
#
#   source tools/setup_venvs.sh && posebridge_ensure_venvs    # from another bash script
#   bash tools/setup_venvs.sh                                  # stand-alone
#
# Layout: "${POSEBRIDGE_VENVS:-$HOME/.cache/posebridge/venvs}/<name>", where <name> is
#   bpy50   bpy==5.0.1   (Blender 5.0, whose wheel asks for numpy>=1.26,<2)
#   bpy42   bpy==4.2.23  (Blender 4.2 LTS, which ships numpy 1.26: numpy<2 is pinned here)
#   backend backend/requirements.txt (CPU torch, diffusers, transformers, ...; numpy 2)
# each with pytest and the test-only compat packages of tests/requirements-compat.txt.
#
# A spec whose second field is "-r FILE" (FILE relative to the repository) is a venv made from
# that requirements file instead of a bpy release: its third field (numpy requirement) is empty,
# so nothing constrains numpy but the file's own pins, and its check imports the file's packages
# instead of bpy. Its pins are exact ("name==version"): the venv's check verifies every one.
#
# tests/requirements-compat.txt: ordinary requirement lines ("name==version", comments, blanks).
# A line ending in "# no-deps", and any line for controlnet-aux (whose declared dependencies pull
# in torch and more that the tests never import), is installed with "pip install --no-deps" after
# the others. numpy is held below 2 in every venv through a constraints file, so nothing the
# compat file brings can upgrade it.
#
# A venv is reused as is when its marker file holds the hash of everything that decides its
# contents (Python version, the requirement lines, this file's SETUP_REV); otherwise pip brings it
# up to date in place (quietly; errors still print). Packages dropped from the lists stay until
# the venv is rebuilt: POSEBRIDGE_RECREATE_VENVS=1 deletes and recreates the venvs.
# Needs CPython 3.11 (bpy wheels are cp311): POSEBRIDGE_PYTHON picks the interpreter, else
# python3.11, else python3.

POSEBRIDGE_SETUP_REV=2
POSEBRIDGE_VENVS="${POSEBRIDGE_VENVS:-$HOME/.cache/posebridge/venvs}"
POSEBRIDGE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# name|bpy requirement (or "-r FILE")|numpy requirement (empty for "-r FILE")
POSEBRIDGE_VENV_SPECS=(
  "bpy50|bpy==5.0.1|numpy<2"
  "bpy42|bpy==4.2.23|numpy<2"
  "backend|-r backend/requirements.txt|"
)
# Shared libraries the bpy wheels link against, and the Debian packages that hold them.
POSEBRIDGE_BPY_DEBS=(libx11-6 libxrender1 libxxf86vm1 libxfixes3 libxi6 libxext6 libxkbcommon0
  libsm6 libice6 libgl1 libglx0 libgomp1 zlib1g)

_pb_log() { printf '[setup_venvs] %s\n' "$*" >&2; }

_pb_pip() {
  # Quiet but not silent: -q hides progress and "already satisfied"; errors and warnings still
  # print, except the notes about this machine's configured local package folders that are absent.
  "$1/bin/python" -m pip --disable-pip-version-check --no-input -q "${@:2}" 2>&1 |
    sed -u "/^WARNING: Location 'file:[^']*' is ignored: it is neither a file nor a directory/d" >&2
  return "${PIPESTATUS[0]}"
}

posebridge_base_python() {
  local candidate version
  for candidate in "${POSEBRIDGE_PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    version="$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || continue
    if [ "$version" = "3.11" ]; then
      command -v "$candidate"
      return 0
    fi
  done
  _pb_log "ERROR: CPython 3.11 is needed (the bpy wheels are cp311); set POSEBRIDGE_PYTHON"
  return 1
}

# Print the compat requirement lines, split: "normal" or "nodeps" ($1).
_pb_compat_lines() {
  local which="$1" file="$POSEBRIDGE_REPO/tests/requirements-compat.txt" raw line name nodeps
  [ -f "$file" ] || return 0
  while IFS= read -r raw || [ -n "$raw" ]; do
    nodeps=0
    case "$raw" in *"# no-deps"*) nodeps=1 ;; esac
    line="$(printf '%s' "${raw%%#*}" | sed -E 's/^[[:space:]]+|[[:space:]]+$//g')"
    [ -n "$line" ] || continue
    name="$(printf '%s' "$line" | sed -E 's/[<>=!~;[ ].*//' | tr 'A-Z_.' 'a-z--')"
    [ "$name" = "controlnet-aux" ] && nodeps=1
    if { [ "$which" = nodeps ] && [ $nodeps = 1 ]; } || { [ "$which" = normal ] && [ $nodeps = 0 ]; }; then
      printf '%s\n' "$line"
    fi
  done <"$file"
}

# The requirement lines of a requirements file (comments and blanks dropped): all of them, or
# with $2 "normal" or "nodeps" only those without or with a "# no-deps" mark.
_pb_req_file_lines() {
  local raw line which="${2:-all}" nodeps
  while IFS= read -r raw || [ -n "$raw" ]; do
    nodeps=0
    case "$raw" in *"# no-deps"*) nodeps=1 ;; esac
    line="$(printf '%s' "${raw%%#*}" | sed -E 's/^[[:space:]]+|[[:space:]]+$//g')"
    [ -n "$line" ] || continue
    if [ "$which" = all ] || { [ "$which" = nodeps ] && [ $nodeps = 1 ]; } ||
      { [ "$which" = normal ] && [ $nodeps = 0 ]; }; then
      printf '%s\n' "$line"
    fi
  done <"$1"
}

# "-r FILE" spec -> the file's absolute path; nothing (and status 1) for a bpy spec.
_pb_spec_req_file() {
  case "$1" in
    "-r "*) printf '%s\n' "$POSEBRIDGE_REPO/${1#-r }" ;;
    *) return 1 ;;
  esac
}

# Everything that decides a venv's contents, one item a line.
_pb_venv_recipe() {
  local base_python="$1" bpy_req="$2" numpy_req="$3" req_file
  if req_file="$(_pb_spec_req_file "$bpy_req")"; then
    # A requirements-file venv (its own recipe; the bpy venvs' recipe below is unchanged).
    printf 'setup-rev=%s\n' "$POSEBRIDGE_SETUP_REV"
    printf 'python=%s\n' "$("$base_python" -c 'import sys; print(sys.version.split()[0])')"
    printf 'req-file=%s\n' "${bpy_req#-r }"
    _pb_req_file_lines "$req_file" | sed 's/^/req=/'
    _pb_compat_lines normal | sed 's/^/compat=/'
    _pb_compat_lines nodeps | sed 's/^/nodeps=/'
    return 0
  fi
  printf 'setup-rev=%s\n' "$POSEBRIDGE_SETUP_REV"
  printf 'python=%s\n' "$("$base_python" -c 'import sys; print(sys.version.split()[0])')"
  printf 'req=%s\n' "$bpy_req" "$numpy_req" "pytest"
  printf 'constraint=%s\n' "$numpy_req"
  _pb_compat_lines normal | sed 's/^/compat=/'
  _pb_compat_lines nodeps | sed 's/^/nodeps=/'
}

_pb_ensure_system_libs() {
  # bpy needs a few X11/GL client libraries even headless. Install them only if one is missing.
  local venv="$1" so missing
  so="$(ls "$venv"/lib/python3.11/site-packages/bpy/__init__*.so 2>/dev/null | head -n1)"
  [ -n "$so" ] && command -v ldd >/dev/null 2>&1 || return 0
  missing="$(ldd "$so" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')"
  [ -z "$missing" ] && return 0
  _pb_log "bpy needs missing shared libraries: $missing"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    _pb_log "installing ${POSEBRIDGE_BPY_DEBS[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${POSEBRIDGE_BPY_DEBS[@]}" >/dev/null
  else
    _pb_log "ERROR: install the Debian packages ${POSEBRIDGE_BPY_DEBS[*]} (or your system's equivalents)"
    return 1
  fi
}

posebridge_venv_dir() { printf '%s\n' "$POSEBRIDGE_VENVS/$1"; }

# posebridge_ensure_venv NAME BPY_REQ NUMPY_REQ: create or update one venv
# (BPY_REQ "-r FILE" and an empty NUMPY_REQ: a venv from that requirements file).
posebridge_ensure_venv() {
  local name="$1" bpy_req="$2" numpy_req="$3"
  local venv="$POSEBRIDGE_VENVS/$name" marker base_python recipe want have tmp start req_file=""
  marker="$venv/.posebridge-setup.sha256"
  base_python="$(posebridge_base_python)" || return 1
  recipe="$(_pb_venv_recipe "$base_python" "$bpy_req" "$numpy_req")"
  want="$(printf '%s\n' "$recipe" | sha256sum | cut -d' ' -f1)"
  have="$(cat "$marker" 2>/dev/null || true)"
  if [ "${POSEBRIDGE_RECREATE_VENVS:-0}" = 1 ]; then
    have=""
    rm -rf "$venv"
  fi
  if [ "$want" = "$have" ] && "$venv/bin/python" -c '' 2>/dev/null; then
    _pb_log "$name: up to date ($venv)"
    return 0
  fi

  start=$SECONDS
  if ! "$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    _pb_log "$name: creating $venv"
    mkdir -p "$POSEBRIDGE_VENVS"
    "$base_python" -m venv --clear "$venv"
  else
    _pb_log "$name: updating $venv (requirements changed)"
  fi
  rm -f "$marker"

  tmp="$(mktemp -d)"
  if req_file="$(_pb_spec_req_file "$bpy_req")"; then
    if [ ! -f "$req_file" ]; then
      rm -rf "$tmp"
      _pb_log "ERROR: $name: no requirements file $req_file"
      return 1
    fi
    : >"$tmp/constraints.txt"
    _pb_req_file_lines "$req_file" normal >"$tmp/requirements.txt"
    _pb_req_file_lines "$req_file" nodeps >"$tmp/requirements-nodeps.txt"
  else
    req_file=""
    printf '%s\n' "$numpy_req" >"$tmp/constraints.txt"
    printf '%s\n' "$bpy_req" "$numpy_req" "pytest" >"$tmp/requirements.txt"
    : >"$tmp/requirements-nodeps.txt"
  fi
  _pb_compat_lines normal >>"$tmp/requirements.txt"
  _pb_compat_lines nodeps >>"$tmp/requirements-nodeps.txt"

  if [ -s "$tmp/requirements-nodeps.txt" ]; then
    _pb_log "$name: $(tr '\n' ' ' <"$tmp/requirements-nodeps.txt")is installed with --no-deps:" \
      "pip's notes about its missing dependencies are expected"
  fi
  if ! _pb_pip "$venv" install -c "$tmp/constraints.txt" -r "$tmp/requirements.txt"; then
    rm -rf "$tmp"
    _pb_log "ERROR: $name: pip install failed"
    return 1
  fi
  if [ -s "$tmp/requirements-nodeps.txt" ] &&
    ! _pb_pip "$venv" install --no-deps -c "$tmp/constraints.txt" -r "$tmp/requirements-nodeps.txt"; then
    rm -rf "$tmp"
    _pb_log "ERROR: $name: pip install --no-deps failed"
    return 1
  fi
  rm -rf "$tmp"

  if [ -n "$req_file" ]; then
    _pb_check_req_venv "$name" "$venv" "$req_file" || return 1
    printf '%s\n' "$want" >"$marker"
    _pb_log "$name: ready in $((SECONDS - start)) s"
    return 0
  fi

  _pb_ensure_system_libs "$venv" || return 1
  # Check the result before writing the marker: the pinned bpy and numpy import and agree.
  if ! "$venv/bin/python" - "$bpy_req" "$numpy_req" <<'PY'
import sys
from importlib.metadata import version

import numpy
from packaging.requirements import Requirement

for spec in sys.argv[1:]:
    req = Requirement(spec)
    have = version(req.name)
    if not req.specifier.contains(have, prereleases=True):
        sys.exit(f"{req.name} {have} does not satisfy {spec}")
import bpy  # noqa: E402  (starts Blender: proves the wheel and its system libraries load)

print(f"bpy {bpy.app.version_string}, numpy {numpy.__version__}", file=sys.stderr)
PY
  then
    _pb_log "ERROR: $name: the venv does not import bpy/numpy as pinned"
    return 1
  fi
  printf '%s\n' "$want" >"$marker"
  _pb_log "$name: ready in $((SECONDS - start)) s"
}

# Check a requirements-file venv before its marker is written: every exact pin of the file holds,
# and torch, when pinned, imports as a CPU-or-GPU build of that version (its module loads).
_pb_check_req_venv() {
  local name="$1" venv="$2" req_file="$3"
  if ! _pb_req_file_lines "$req_file" | "$venv/bin/python" -c '
import sys
from importlib import import_module
from importlib.metadata import version

from packaging.requirements import Requirement

names = []
for line in sys.stdin.read().split("\n"):
    if not line.strip() or line.startswith("-"):
        continue
    req = Requirement(line)
    have = version(req.name)
    if not req.specifier.contains(have, prereleases=True):
        sys.exit(f"{req.name} {have} does not satisfy {line}")
    names.append(f"{req.name} {have}")
for module in ("torch", "diffusers", "transformers"):
    try:
        import_module(module)
    except ModuleNotFoundError:
        pass
print(", ".join(names), file=sys.stderr)
'; then
    _pb_log "ERROR: $name: the venv does not match $req_file"
    return 1
  fi
}

# Ensure every venv of POSEBRIDGE_VENV_SPECS (or only the names given as arguments).
posebridge_ensure_venvs() {
  local spec name bpy_req numpy_req wanted w known=" "
  for spec in "${POSEBRIDGE_VENV_SPECS[@]}"; do known+="${spec%%|*} "; done
  for w in "$@"; do
    case "$known" in *" $w "*) ;; *) _pb_log "ERROR: unknown venv '$w' (known:$known)"; return 1 ;; esac
  done
  for spec in "${POSEBRIDGE_VENV_SPECS[@]}"; do
    IFS='|' read -r name bpy_req numpy_req <<<"$spec"
    if [ $# -gt 0 ]; then
      wanted=0
      for w in "$@"; do [ "$w" = "$name" ] && wanted=1; done
      [ $wanted = 1 ] || continue
    fi
    posebridge_ensure_venv "$name" "$bpy_req" "$numpy_req" || return 1
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  posebridge_ensure_venvs "$@"
fi

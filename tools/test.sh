#!/usr/bin/env bash
# PoseBridge's test command (the one README names, and what CI runs):
#
#   bash tools/test.sh [pytest args...]        e.g.  bash tools/test.sh -k extension_package -x
#
# Ensures the test venvs (tools/setup_venvs.sh: bpy 5.0.1, bpy 4.2.23 and the generation backend's
# torch/diffusers venv), then runs pytest once with each: the bpy venvs run `tests/` except
# tests/backend (the bpy 5.0 venv first), the backend venv runs tests/backend and tests/pure. All
# runs always happen; the command fails if any fails, including pytest's exit code 5 (no test
# collected). POSEBRIDGE_TEST_VENVS="bpy42" limits the runs to the named venvs.
# Blender's user folder (BLENDER_USER_RESOURCES) is a fresh temporary one for the run, so the
# tests neither see nor change your own Blender preferences and extensions.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_venvs.sh
source "$REPO/tools/setup_venvs.sh"

read -r -a RUNS <<<"${POSEBRIDGE_TEST_VENVS:-bpy50 bpy42 backend}"
posebridge_ensure_venvs "${RUNS[@]}"

run_tmp="$(mktemp -d -t posebridge-test.XXXXXX)"
trap 'rm -rf "$run_tmp"' EXIT
own_user_dir=0
[ -z "${BLENDER_USER_RESOURCES:-}" ] && own_user_dir=1

cd "$REPO"
declare -a SUMMARY=()
failed=0
ran_some=0
total_pass=0 total_fail=0 total_skip=0
for name in "${RUNS[@]}"; do
  venv="$(posebridge_venv_dir "$name")"
  label="$("$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

names = ["bpy", "numpy"]
try:
    version("bpy")
except PackageNotFoundError:
    names = ["torch", "diffusers", "transformers", "numpy"]
print(", ".join(f"{n} {version(n)}" for n in names) + f", Python {sys.version.split()[0]}")
PY
)"
  printf '\n======================================================================\n'
  printf ' PoseBridge tests with %s  [%s]\n' "$name" "$label"
  printf '   %s\n' "$venv"
  printf '======================================================================\n'
  if [ $own_user_dir = 1 ]; then
    export BLENDER_USER_RESOURCES="$run_tmp/blender-user-$name"
    mkdir -p "$BLENDER_USER_RESOURCES"
  fi
  start=$SECONDS
  set +e
  # The backend venv (torch, no bpy) runs the backend tier and the pure tier; the bpy venvs run
  # everything but the backend tier.
  if [ "$name" = backend ]; then
    targets=("$REPO/tests/backend" "$REPO/tests/pure")
  else
    targets=("$REPO/tests" "--ignore=$REPO/tests/backend")
  fi
  "$venv/bin/python" -m pytest "${targets[@]}" --junitxml="$run_tmp/$name.xml" "$@"
  rc=$?
  set -e
  took=$((SECONDS - start))
  counts="$("$venv/bin/python" - "$run_tmp/$name.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0 0")
    raise SystemExit
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = total["failures"] + total["errors"]
print(total["tests"] - failed - total["skipped"], failed, total["skipped"], 1)
PY
)"
  read -r n_pass n_fail n_skip have_xml <<<"$counts"
  total_pass=$((total_pass + n_pass)); total_fail=$((total_fail + n_fail)); total_skip=$((total_skip + n_skip))
  detail="$n_pass passed, $n_fail failed, $n_skip skipped, ${took} s"
  [ "$have_xml" = 1 ] || detail="no result file, ${took} s"
  # With pytest arguments (-k ...) one run may select nothing (the backend run has no Blender
  # tests): that run is not a failure, as long as some run ran tests (checked after the loop).
  if [ $rc = 5 ] && [ $# -gt 0 ]; then
    SUMMARY+=("$name: no test selected by the given arguments")
    continue
  fi
  ran_some=1
  case $rc in
    0) SUMMARY+=("$name: ok ($detail)") ;;
    5) SUMMARY+=("$name: FAILED: pytest collected no tests (exit 5)"); failed=1 ;;
    *) SUMMARY+=("$name: FAILED (pytest exit $rc; $detail)"); failed=1 ;;
  esac
  # A run that fails without a failed test (collection error, crash, no tests) still counts as one.
  if [ $rc != 0 ] && [ "$n_fail" = 0 ]; then total_fail=$((total_fail + 1)); fi
done

if [ $ran_some = 0 ]; then
  SUMMARY+=("FAILED: no run selected any test")
  failed=1
  total_fail=$((total_fail + 1))
fi
printf '\n======================================================================\n'
printf ' Summary\n'
printf '   %s\n' "${SUMMARY[@]}"
printf '======================================================================\n'
printf 'total: %d passed, %d failed, %d skipped\n' "$total_pass" "$total_fail" "$total_skip"
exit $failed

#!/usr/bin/env bash
# PoseBridge's demo (README's main command): set up Blender-as-a-module (bpy 5.0.1) if needed,
# build the built-in demo shot, render its pose maps and write a contact sheet.
#
#   bash tools/demo.sh [demo options...]     e.g.  bash tools/demo.sh --out demo_out --frames 72
#
# Output (default folder demo_out/): poses/pose_NNNN.png, poses/keypoints/*.json,
# renders/render_NNNN.png and contact_sheet.png (plain render beside pose map, six frames).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_venvs.sh
source "$REPO/tools/setup_venvs.sh"
posebridge_ensure_venvs bpy50
exec "$(posebridge_venv_dir bpy50)/bin/python" "$REPO/cli.py" demo "$@"

#!/usr/bin/env bash
# PoseBridge's demo (README's main command): set up Blender-as-a-module (bpy 5.0.1) and the
# generation backend's venv (CPU torch, diffusers) if needed, build the built-in demo shot, render
# its pose maps, write a contact sheet, then generate its frames on a local backend (the default
# models when they are in the Hugging Face cache, else the tiny random-weight model), place them
# as one VSE strip, and export an MP4 and a first-vs-last sheet.
#
#   bash tools/demo.sh [demo options...]     e.g.  bash tools/demo.sh --out demo_out --frames 72
#
# Output (default folder demo_out/): poses/pose_NNNN.png, poses/keypoints/*.json,
# renders/render_NNNN.png, contact_sheet.png (plain render beside pose map, six frames),
# generated/frame_NNNN.png, generated.mp4, first_vs_last.png and demo.blend (the shot with its
# strip). --backend URL uses a running backend instead of starting one.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup_venvs.sh
source "$REPO/tools/setup_venvs.sh"
posebridge_ensure_venvs bpy50 backend
exec "$(posebridge_venv_dir bpy50)/bin/python" "$REPO/cli.py" demo \
  --backend-python "$(posebridge_venv_dir backend)/bin/python" "$@"

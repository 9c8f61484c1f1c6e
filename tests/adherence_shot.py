"""A real shot for the pose-adherence tests, laid out as Generate leaves it.

Frames of pose2sim's ``cam01.mp4`` (../shared/data/pose2sim) stand in for generated frames
(``OUT/frame_NNNN.png``, NNNN = the video frame) and the real OpenPose output beside the video
(``cam01_json``, BODY_25B) for the keypoints the pose maps were drawn from
(``OUT/poses/keypoints/pose_NNNN_keypoints.json``, COCO-18 as the pose-map job writes them),
converted with the project's own reader and writer. Only the performer is kept (``people[0]``
in these files, see the data README): the bystander is not what a pose map would hold.

The test venvs may lack a video decoder (the bpy venvs have numpy only), so the frames are
decoded by the backend venv's Python (PyAV, PIL) in a subprocess.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

import backend_process
from posebridge.pose.formats import openpose_json
from posebridge.pose.formats.readers import load_keypoints
from posebridge.pose.keypoints import KeypointSequence

VIDEO_SIZE = (1080, 1920)
SCALE = 0.4  # 432x768: the performer stays large, the requests stay small
FRAMES = (0, 18, 36, 54, 72, 90)

_DECODE = """
import sys
from pathlib import Path
import av
out, scale, wanted = Path(sys.argv[2]), float(sys.argv[3]), {int(f) for f in sys.argv[4:]}
out.mkdir(parents=True, exist_ok=True)
with av.open(sys.argv[1]) as container:
    for index, frame in enumerate(container.decode(video=0)):
        if index in wanted:
            image = frame.to_image()
            size = (round(image.width * scale), round(image.height * scale))
            image.resize(size).save(out / f"frame_{index:04d}.png")
        if index >= max(wanted):
            break
"""


def decode_frames(video: Path, out_dir: Path, frames=FRAMES, scale: float = SCALE) -> Path:
    """``out_dir/frame_NNNN.png`` for the video frames ``frames``, scaled by ``scale``."""
    python = backend_process.backend_python()
    if python is None:
        raise RuntimeError("no backend Python to decode the video with")
    done = subprocess.run([python, "-c", _DECODE, str(video), str(out_dir), str(scale), *map(str, frames)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"decoding {video} failed:\n{done.stderr[-2000:]}")
    return out_dir


def performer_keypoints(shared_data: Path, scale: float = SCALE) -> KeypointSequence:
    """The performer's keypoints of every video frame, in pixels of the scaled frames."""
    imported = load_keypoints(shared_data / "pose2sim" / "cam01_json", canvas=VIDEO_SIZE)
    seq = imported.sequence
    data = seq.data[:, :1].copy()
    data[..., :2] *= scale
    canvas = (round(VIDEO_SIZE[0] * scale), round(VIDEO_SIZE[1] * scale))
    return KeypointSequence(seq.layout, data, canvas, seq.frame_numbers)


def write_keypoints(seq: KeypointSequence, folder: Path, pairs) -> Path:
    """``pose_NNNN_keypoints.json`` for each (frame number written, frame of ``seq`` used):
    the pairs say which frame's keypoints stand for which generated frame."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {int(f): i for i, f in enumerate(seq.frame_numbers)}
    for number, source in pairs:
        one = KeypointSequence(seq.layout, seq.data[index[source]][None], seq.canvas, np.array([number]))
        openpose_json.write_frame(one, 0, folder, parts=("body",))
    return folder


def build_shot(shared_data: Path, root: Path, frames=FRAMES, keypoints_of=None) -> Path:
    """``root/frame_NNNN.png`` and ``root/poses/keypoints/pose_NNNN_keypoints.json``.
    ``keypoints_of(frame)``: the video frame whose keypoints go with ``frame`` (default itself)."""
    decode_frames(shared_data / "pose2sim" / "cam01.mp4", root, frames)
    pairs = [(f, (keypoints_of or (lambda f: f))(f)) for f in frames]
    write_keypoints(performer_keypoints(shared_data), root / "poses" / "keypoints", pairs)
    return root

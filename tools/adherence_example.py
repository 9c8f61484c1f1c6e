"""Make README's pose-adherence picture from real data (run with the backend venv's Python).

    ~/.cache/posebridge/venvs/backend/bin/python tools/adherence_example.py [--out PATH]

Frames 30-53 of ../shared/data/pose2sim/cam01.mp4 stand in for generated frames; the expected
keypoints are the performer's real OpenPose keypoints of the same frames (cam01_json), with two
faults planted so the picture shows what a check finds: frames 38-40 get the keypoints of 50
frames later (a character that lost the pose), frames 47-48 get left and right exchanged (a
character turned front to back). The check runs MediaPipe, as the backend does by default.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "pose2sim"
FRAMES = range(30, 54)
LOST, EXCHANGED = (38, 39, 40), (47, 48)
SIZE = (1080, 1920)


def _load_package():
    sys.path.insert(0, str(REPO))
    from cli import load_extension

    load_extension()


def exchanged(points: np.ndarray, layout) -> np.ndarray:
    out = points.copy()
    for i, name in enumerate(layout.points):
        if name.startswith("l_"):
            j = layout.index("r_" + name[2:])
            out[..., i, :], out[..., j, :] = points[..., j, :], points[..., i, :]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "adherence_pose2sim.png")
    args = parser.parse_args()
    _load_package()
    from PIL import Image

    from posebridge.backend.adherence_run import check_adherence
    from posebridge.backend.extract.video import read_frames
    from posebridge.draw.png import write_png
    from posebridge.pose.formats.openpose_json import write_frame
    from posebridge.pose.formats.readers import load_keypoints
    from posebridge.pose.keypoints import KeypointSequence
    from posebridge.pose.layouts import IMPORT

    reference = load_keypoints(DATA / "cam01_json", canvas=SIZE).sequence
    performer = reference.data[:, :1]  # people[0] is the performer in these files (shared/data/README.md)
    with tempfile.TemporaryDirectory() as tmp:
        generated, keypoints = Path(tmp) / "generated", Path(tmp) / "keypoints"
        generated.mkdir()
        keypoints.mkdir()
        for frame in read_frames(DATA / "cam01.mp4", start=FRAMES[0], end=FRAMES[-1]):
            write_png(generated / f"frame_{frame.index:04d}.png", frame.rgb)
        expected = np.stack([performer[n + 50] if n in LOST else performer[n] for n in FRAMES])
        for n in EXCHANGED:
            expected[FRAMES.index(n)] = exchanged(expected[FRAMES.index(n)], IMPORT)
        seq = KeypointSequence(IMPORT, expected, SIZE, list(FRAMES))
        for index in range(len(FRAMES)):
            write_frame(seq, index, keypoints, prefix="pose", parts=("body",))
        document = check_adherence(generated, keypoints, out_dir=Path(tmp), extractor="mediapipe")
        picture = Image.open(Path(tmp) / "adherence.png")
        # README size: three quarters of the width, 128 colours (the report itself stays full size).
        picture = picture.resize((picture.width * 3 // 4, picture.height * 3 // 4), Image.LANCZOS)
        picture.quantize(128).save(args.out, optimize=True)
    print(f"score {document['score']:.3f}, flagged {document['flagged_frames']}, wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

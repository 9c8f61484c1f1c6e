"""The client side of Check Pose Adherence (generate/adherence.py, adherence_run.py): pairing a
generated folder with the keypoints beside its pose maps, the POST /adherence document, unpacking
the result zip into the folder without touching a frame, the report's summary; and the check
against a real backend process (skips without one)."""
import base64
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from posebridge.generate import adherence
from posebridge.generate.adherence import AdherenceError
from posebridge.generate.adherence_run import AdherenceCheck
from posebridge.generate.client import BackendClient
from posebridge.generate.run_state import CANCELLED, DONE, FAILED
from posebridge.draw.png import encode_png, write_png
from posebridge.pose.formats.sources import KeypointFileError, keypoint_files

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import adherence_shot  # noqa: E402


def _shot(shared_data, root, frames=(3, 4, 5)):
    """Generated frames 3..5 (plain pictures) and the real keypoints of video frames 3..5."""
    root.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        write_png(root / f"frame_{frame:04d}.png", np.full((16, 8, 3), frame * 10, np.uint8))
    seq = adherence_shot.performer_keypoints(shared_data)
    adherence_shot.write_keypoints(seq, root / "poses" / "keypoints", [(f, f) for f in frames])
    return root


def _report(frames=(3, 4, 5), flagged=(5,), score=0.81):
    return {
        "format": "posebridge-adherence", "version": 1, "score": score, "threshold": 0.5,
        "extractor": "mediapipe",
        "frames": [{"frame": f, "body_pck": 0.2 if f in flagged else 0.95, "flagged": f in flagged}
                   for f in frames],
        "worst_frames": sorted(frames, key=lambda f: f not in flagged), "flagged_frames": list(flagged),
    }


def _zip(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


PICTURE = encode_png(np.zeros((4, 4, 3), np.uint8))


def test_body_pairs_each_generated_frame_with_the_keypoints_its_pose_map_came_from(shared_data, tmp_path):
    out = _shot(shared_data, tmp_path / "gen", frames=(3, 4, 5))
    write_png(out / "frame_0009.png", np.zeros((16, 8, 3), np.uint8))  # no keypoints: not checked
    adherence_shot.write_keypoints(adherence_shot.performer_keypoints(shared_data),
                                   out / "poses" / "keypoints", [(12, 12)])  # not generated yet
    (out / "first_vs_last.png").write_bytes(PICTURE)  # other pictures in the folder are not frames

    inputs = adherence.gather_inputs(out, adherence.keypoints_folder(out / "poses"))
    assert inputs.frames == [3, 4, 5]
    assert inputs.without_keypoints == [9] and inputs.not_generated == [12]
    assert any("frame(s) have no keypoints" in n for n in inputs.notes())

    body = adherence.adherence_body(inputs, threshold=0.4)
    assert body["extractor"] == "mediapipe" and body["threshold"] == 0.4
    assert [g["frame"] for g in body["generated"]] == [3, 4, 5]
    for entry in body["generated"]:  # the files' own bytes, not re-encoded
        assert base64.b64decode(entry["image"]) == (out / f"frame_{entry['frame']:04d}.png").read_bytes()
    assert [k["frame"] for k in body["keypoints"]] == [3, 4, 5]
    person = body["keypoints"][1]["document"]["people"][0]
    assert len(person["pose_keypoints_2d"]) == 18 * 3  # COCO-18, as the pose-map job writes
    # The real keypoints of video frame 4, scaled with the frames (nose of the performer).
    assert person["pose_keypoints_2d"][0] == pytest.approx(
        adherence_shot.performer_keypoints(shared_data).data[4, 0, 0, 0], abs=0.01)
    json.dumps(body)  # what the client sends


def test_missing_folders_and_unpaired_frames_are_named(shared_data, tmp_path):
    out = _shot(shared_data, tmp_path / "gen", frames=(3,))
    with pytest.raises(AdherenceError, match="no keypoints beside the pose maps"):
        adherence.gather_inputs(out, tmp_path / "nowhere")
    with pytest.raises(AdherenceError, match="no such folder of generated frames"):
        adherence.gather_inputs(tmp_path / "none", out / "poses" / "keypoints")
    other = tmp_path / "other" / "keypoints"
    adherence_shot.write_keypoints(adherence_shot.performer_keypoints(shared_data), other, [(40, 40)])
    with pytest.raises(AdherenceError, match="were they made from other pose maps"):
        adherence.gather_inputs(out, other)


def test_two_keypoint_files_with_one_frame_number_are_named(shared_data, tmp_path):
    out = _shot(shared_data, tmp_path / "gen", frames=(1,))
    keypoints = out / "poses" / "keypoints"
    (keypoints / "pose_1_keypoints.json").write_bytes((keypoints / "pose_0001_keypoints.json").read_bytes())
    message = f"{keypoints}: pose_0001_keypoints.json and pose_1_keypoints.json both carry frame number 1"
    with pytest.raises(KeypointFileError, match=message):  # the one reader the backend uses too
        keypoint_files(keypoints)
    with pytest.raises(AdherenceError, match=message):
        adherence.gather_inputs(out, keypoints)


def test_each_keypoint_document_carries_its_pose_maps_size(shared_data, tmp_path):
    """The points are in the pose maps' pixels: the backend needs that size to scale them onto
    generated frames of another size (here 8x16 frames, 32x64 pose maps)."""
    out = _shot(shared_data, tmp_path / "gen", frames=(3, 4, 5))
    write_png(out / "poses" / "pose_0003.png", np.zeros((64, 32, 3), np.uint8))
    write_png(out / "poses" / "pose_0004.png", np.zeros((64, 32, 3), np.uint8))
    own = out / "poses" / "keypoints" / "pose_0004_keypoints.json"  # carries its own canvas: kept
    own.write_text(json.dumps({**json.loads(own.read_text()), "canvas_width": 20, "canvas_height": 40}))
    body = adherence.adherence_body(adherence.gather_inputs(out, out / "poses" / "keypoints"))
    canvases = {k["frame"]: (k["document"].get("canvas_width"), k["document"].get("canvas_height"))
                for k in body["keypoints"]}
    assert canvases == {3: (32, 64), 4: (20, 40), 5: (None, None)}  # 5: no pose map, no canvas


def test_unpacking_replaces_the_report_only_and_never_a_frame(tmp_path):
    out = tmp_path / "gen"
    out.mkdir()
    frame = out / "frame_0003.png"
    frame.write_bytes(PICTURE)
    before = frame.stat()
    (out / "adherence.json").write_text(json.dumps(_report(score=0.1)))
    archive = _zip({"adherence.json": json.dumps(_report()), "adherence.png": PICTURE,
                    "frame_0003.png": b"not a frame", "../frame_0003.png": b"nor this", "notes.txt": "x"})
    written = adherence.unpack_report(archive, out)
    assert written == [out / "adherence.json", out / "adherence.png"]
    assert json.loads((out / "adherence.json").read_text())["score"] == 0.81
    assert frame.read_bytes() == PICTURE and frame.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in out.iterdir()) == ["adherence.json", "adherence.png", "frame_0003.png"]
    assert not (tmp_path / "frame_0003.png").exists()
    # A newer report without a picture drops the old picture, which would no longer match it.
    adherence.unpack_report(_zip({"adherence.json": json.dumps(_report(score=0.5))}), out)
    assert not (out / "adherence.png").exists()


@pytest.mark.parametrize("archive, message", [
    (b"PK\x05\x06" + bytes(18), "has no adherence.json"),
    (b"garbage", "not a readable zip"),
    (_zip({"adherence.json": "{"}), "not JSON"),
    (_zip({"adherence.json": json.dumps({"score": 1})}), "not a PoseBridge adherence report"),
    (_zip({"adherence.json": json.dumps(_report()), "adherence.png": b"GIF89a"}), "not a PNG"),
])
def test_a_result_that_is_not_a_report_leaves_the_folder_alone(tmp_path, archive, message):
    out = tmp_path / "gen"
    out.mkdir()
    (out / "adherence.json").write_text(json.dumps(_report(score=0.3)))
    with pytest.raises(AdherenceError, match=message):
        adherence.unpack_report(archive, out)
    assert json.loads((out / "adherence.json").read_text())["score"] == 0.3


def test_summary_gives_score_worst_and_flagged_and_follows_the_file(tmp_path):
    assert adherence.read_summary(tmp_path) is None
    (tmp_path / "adherence.json").write_text(json.dumps(_report(frames=range(1, 21), flagged=(4, 9, 17))))
    summary = adherence.read_summary(tmp_path)
    assert summary.score == 0.81 and summary.frames_checked == 20 and summary.threshold == 0.5
    assert summary.worst_frame == 4 and summary.flagged_frames == [4, 9, 17]
    assert summary.flagged_text(limit=2) == "4, 9 and 1 more"
    assert "0.81" in summary.text() and "worst frame 4" in summary.text()
    (tmp_path / "adherence.json").write_text(json.dumps(_report(flagged=(), score=0.97)))
    os.utime(tmp_path / "adherence.json", ns=(time.time_ns(), time.time_ns() + 10**9))
    summary = adherence.read_summary(tmp_path)
    assert summary.score == 0.97 and summary.flagged_frames == [] and summary.flagged_text() == "none"
    (tmp_path / "adherence.json").write_text("{broken")
    assert adherence.read_summary(tmp_path) is None


# -- against a real backend process ---------------------------------------------------------


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


def test_check_against_the_backend_writes_the_report_into_the_generated_folder(client, shared_data, tmp_path):
    """Frames at 0.4 of the video's size against keypoints and pose maps at its full size: the
    pose maps' size sent with the keypoints lets the backend scale them (else the score is ~0)."""
    out = adherence_shot.build_shot(shared_data, tmp_path / "gen", frames=(0, 30))
    poses = out / "poses"
    adherence_shot.write_keypoints(adherence_shot.performer_keypoints(shared_data, scale=1.0),
                                   poses / "keypoints", [(0, 0), (30, 30)])
    width, height = adherence_shot.VIDEO_SIZE
    for frame in (0, 30):
        write_png(poses / f"pose_{frame:04d}.png", np.zeros((height, width, 3), np.uint8))
    frames_before = {p.name: p.read_bytes() for p in out.glob("frame_*.png")}
    seen = []
    check = AdherenceCheck(client, out, out / "poses" / "keypoints", poll_interval=0.05)
    status = check.run_blocking(seen.append)
    assert status.state == DONE, status.message
    assert status.progress == 1.0 and status.summary.frames_checked == 2
    assert status.summary.score >= 0.7, status.summary
    report = json.loads((out / "adherence.json").read_text())
    assert report["format"] == "posebridge-adherence" and [f["frame"] for f in report["frames"]] == [0, 30]
    assert (out / "adherence.png").read_bytes().startswith(b"\x89PNG")
    assert {p.name: p.read_bytes() for p in out.glob("frame_*.png")} == frames_before
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and client.status(status.job_id)["state"] == DONE


def test_cancel_deletes_the_job_on_the_backend_and_writes_nothing(client, shared_data, tmp_path):
    out = adherence_shot.build_shot(shared_data, tmp_path / "gen", frames=(0, 10, 20, 30, 40, 50))
    check = AdherenceCheck(client, out, out / "poses" / "keypoints", poll_interval=0.05)
    check.start()
    deadline = time.monotonic() + 60
    while check.snapshot().job_id is None and not check.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    check.cancel()
    assert check.wait(30)
    status = check.snapshot()
    assert status.state == CANCELLED, status.message
    deadline = time.monotonic() + 60  # a running job stops at its next frame
    while client.status(status.job_id)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.status(status.job_id)["state"] in ("cancelled", "done")
    assert not (out / "adherence.json").exists()


def _wait_for_job(check) -> str:
    deadline = time.monotonic() + 60
    while check.snapshot().job_id is None and not check.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert check.snapshot().job_id is not None, check.snapshot()
    return check.snapshot().job_id


def test_a_check_cancelled_on_the_backend_by_someone_else_ends_cancelled(client, backend_server, shared_data,
                                                                          tmp_path):
    out = adherence_shot.build_shot(shared_data, tmp_path / "gen", frames=(0, 10, 20, 30, 40, 50))
    check = AdherenceCheck(client, out, out / "poses" / "keypoints", poll_interval=0.05)
    check.start()
    job_id = _wait_for_job(check)
    BackendClient(backend_server.url, backend_server.token).cancel(job_id)  # not the check's own cancel
    assert check.wait(30)
    status = check.snapshot()
    assert status.state == CANCELLED and status.error is None, status
    assert status.message == f"the adherence check job {job_id} was cancelled on the backend (not from here)"
    assert not (out / "adherence.json").exists()


def test_frames_over_the_request_limit_name_the_limit(small_request_backend, shared_data, tmp_path):
    out = _shot(shared_data, tmp_path / "gen", frames=(3,))
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)  # ~120 kB: over 0.1 MB
    write_png(out / "frame_0003.png", noise)
    client = BackendClient(small_request_backend.url, small_request_backend.token)
    status = AdherenceCheck(client, out, out / "poses" / "keypoints").run()
    assert status.state == FAILED and status.job_id is None
    assert status.error.startswith("the frames (0.")
    assert status.error.endswith(" MB) are over the backend's request limit (--max-request-mb): check fewer "
                                 "frames or raise --max-request-mb")

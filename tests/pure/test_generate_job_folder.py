"""The generation output folder without a backend: control folders, planning, stale detection,
atomic writes and the manifest."""
import json
import os

import numpy as np
import pytest

from posebridge.generate import job_folder
from posebridge.generate.controls import ControlFolderError, ControlFrame, control_frames
from posebridge.generate.job_folder import FrameWriter, generation_settings, output_path, plan
from posebridge.pose.formats import atomic_file
from posebridge.draw.png import encode_png, write_png

HEALTH = {"status": "ready", "device": "cpu", "dtype": "fp32", "has_depth": True,
          "models": {"model": "base-a", "pose_controlnet": "pose-a", "depth_controlnet": "depth-a"}}


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 10_000).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def write_poses(folder, frames, prefix="pose", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        write_png(folder / f"{prefix}_{f:04d}.png", _image(seed + f + 1000))
    return folder


def _settings(controls, **params):
    return generation_settings(params, HEALTH, any(c.depth for c in controls))


def _generate(out, settings, controls, overwrite=False):
    """What a run does, without a backend: write the planned frames with a stand-in PNG."""
    p = plan(out, settings, controls)
    writer = FrameWriter(p, overwrite=overwrite, info={"device": "cpu"})
    for frame in p.to_generate(overwrite):
        writer.write(frame, encode_png(_image(frame)))
    return writer.written


# -- control folders ---------------------------------------------------------------------------

def test_control_frames_pairs_pose_and_depth_by_number_with_negative_frames(tmp_path):
    poses = write_poses(tmp_path / "poses", [-5, 0, 1, 12])
    depth = write_poses(tmp_path / "depth", [-5, 0, 1, 12, 13], prefix="depth")
    (poses / "pose_0001_keypoints.json").write_text("{}")
    (poses / ".pose_0002.png.abc123.tmp").write_bytes(b"partial")
    (poses / "contact_sheet.png").write_bytes(b"x")

    frames = control_frames(poses, depth)

    assert [c.frame for c in frames] == [-5, 0, 1, 12]
    assert frames[0].pose.name == "pose_-005.png" and frames[0].depth.name == "depth_-005.png"
    assert all(c.depth.name == c.pose.name.replace("pose_", "depth_") for c in frames)
    assert [c.frame for c in control_frames(poses, frames=[12, 1])] == [1, 12]
    assert all(c.depth is None for c in control_frames(poses))


def test_control_frames_errors_name_the_folder_and_the_problem(tmp_path):
    with pytest.raises(ControlFolderError, match="no such pose folder"):
        control_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ControlFolderError, match=r"no pose maps in this folder \(expected pose_0001.png"):
        control_frames(tmp_path / "empty")
    poses = write_poses(tmp_path / "poses", [1, 2, 3, 4])
    depth = write_poses(tmp_path / "depth", [1, 2], prefix="depth")
    with pytest.raises(ControlFolderError, match=r"no depth map for frame\(s\) 3, 4 .*expected depth_0003.png"):
        control_frames(poses, depth)
    with pytest.raises(ControlFolderError, match="no depth maps in this folder"):
        control_frames(poses, tmp_path / "empty")
    with pytest.raises(ControlFolderError, match=r"no pose map for frame\(s\) 9"):
        control_frames(poses, frames=[1, 9])
    write_png(poses / "pose_1.png", _image(0))
    with pytest.raises(ControlFolderError, match="pose_0001.png and pose_1.png|pose_1.png and pose_0001.png"):
        control_frames(poses)


# -- planning ----------------------------------------------------------------------------------

def test_empty_folder_plans_every_frame_as_missing(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3]))
    p = plan(tmp_path / "out", _settings(controls), controls)
    assert (p.done, p.missing, p.stale) == ([], [1, 2, 3], [])
    assert p.to_generate() == [1, 2, 3]
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_written_frames_are_done_and_recorded_in_the_manifest(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [-5, 1, 2]))
    out = tmp_path / "out"
    settings = _settings(controls, prompt="a dancer", seed=3)
    assert _generate(out, settings, controls) == [-5, 1, 2]

    assert sorted(p.name for p in out.iterdir()) == ["frame_-005.png", "frame_0001.png", "frame_0002.png", "generation.json"]
    p = plan(out, settings, controls)
    assert (p.done, p.missing, p.stale) == ([-5, 1, 2], [], [])
    manifest = json.loads((out / "generation.json").read_text())
    record = manifest["frames"]["1"]
    assert record["file"] == "frame_0001.png" and record["device"] == "cpu"
    assert record["pose"] == job_folder.control_hashes(controls[1])["pose"] and record["depth"] is None
    recorded = manifest["settings"][record["settings"]]
    assert recorded["params"]["prompt"] == "a dancer" and recorded["params"]["seed"] == 3
    assert recorded["models"] == HEALTH["models"]


def test_deleted_frames_are_missing_and_only_they_are_generated(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3, 4]))
    out = tmp_path / "out"
    settings = _settings(controls)
    _generate(out, settings, controls)
    before = {f: os.stat(output_path(out, f)) for f in (1, 4)}
    output_path(out, 2).unlink()
    output_path(out, 3).unlink()

    assert _generate(out, settings, controls) == [2, 3]
    for frame, stat in before.items():
        now = os.stat(output_path(out, frame))
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_other_settings_make_existing_frames_stale_and_they_are_kept_unless_overwrite(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2]))
    out = tmp_path / "out"
    _generate(out, _settings(controls, seed=1, prompt="a"), controls)
    old = output_path(out, 1).read_bytes()
    output_path(out, 2).unlink()

    new = _settings(controls, seed=2, prompt="a")
    p = plan(out, new, controls)
    assert (p.done, p.missing, p.stale) == ([], [2], [1])
    assert p.stale_reasons[1] == "made with other settings (seed)"
    assert "frame 1: made with other settings (seed)" in p.stale_description()
    assert p.to_generate() == [2] and p.to_generate(overwrite=True) == [1, 2]

    _generate(out, new, controls)  # no overwrite: frame 1 stays as it was
    assert output_path(out, 1).read_bytes() == old
    assert plan(out, new, controls).stale == [1]
    assert _generate(out, new, controls, overwrite=True) == [1]
    assert plan(out, new, controls).done == [1, 2]


def test_writer_refuses_a_stale_frame_without_overwrite(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    out = tmp_path / "out"
    _generate(out, _settings(controls, seed=1), controls)
    old = output_path(out, 1).read_bytes()
    p = plan(out, _settings(controls, seed=2), controls)
    with pytest.raises(ValueError, match="frame 1 was not planned"):
        FrameWriter(p).write(1, encode_png(_image(9)))
    assert output_path(out, 1).read_bytes() == old


def test_changed_pose_or_depth_map_makes_the_frame_stale(tmp_path):
    poses = write_poses(tmp_path / "poses", [1, 2, 3])
    depth = write_poses(tmp_path / "depth", [1, 2, 3], prefix="depth")
    out = tmp_path / "out"
    controls = control_frames(poses, depth)
    settings = _settings(controls)
    _generate(out, settings, controls)

    write_png(poses / "pose_0001.png", _image(77))
    write_png(depth / "depth_0002.png", _image(78))
    p = plan(out, settings, control_frames(poses, depth))
    assert (p.done, p.stale) == ([3], [1, 2])
    assert p.stale_reasons == {1: "its pose map changed", 2: "its depth map changed"}

    without = control_frames(poses)
    p = plan(out, _settings(without), without)
    assert p.stale_reasons[3] == "made with a depth map, now without"


def test_other_models_make_frames_stale(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    out = tmp_path / "out"
    _generate(out, _settings(controls), controls)
    other = {**HEALTH, "models": {**HEALTH["models"], "model": "base-b"}}
    p = plan(out, generation_settings({}, other, False), controls)
    assert p.stale_reasons[1] == "made with other settings (model model)"


def test_settings_that_do_not_change_pixels_do_not_make_frames_stale():
    def digest(params, health=HEALTH, uses_depth=False):
        return job_folder.settings_hash(generation_settings(params, health, uses_depth))

    assert digest({"steps": 20, "guidance": 7.5}) == digest({})  # the backend's defaults, spelled out
    assert digest({"guidance": 7}) == digest({"guidance": 7.0})
    assert digest({"batch": 16}) == digest({})  # speed only
    assert digest({"depth_scale": 0.3}) == digest({})  # no depth maps: cannot matter
    assert digest({"depth_scale": 0.3}, uses_depth=True) != digest({}, uses_depth=True)
    assert digest({"seed": 1}) != digest({})
    # Device and dtype are recorded, not compared: rounding differences are not other pictures.
    assert digest({}, {**HEALTH, "device": "cuda", "dtype": "fp16"}) == digest({})


def test_wan_settings_count_for_wan_only_and_its_defaults_hash_as_left_out():
    def settings(params, uses_depth=False, segment=None):
        return generation_settings(params, HEALTH, uses_depth, segment=segment)

    def digest(params, uses_depth=False, segment=None):
        return job_folder.settings_hash(settings(params, uses_depth, segment))

    wan = {"pipeline": "wan-vace"}
    # The resolution and the control video change Wan's pixels...
    assert digest({**wan, "resolution": "720p"}) != digest(wan)
    assert digest({**wan, "vace_control": "depth"}, uses_depth=True) != digest(wan, uses_depth=True)
    # ...and mean nothing to the other pipelines, as the context windows mean nothing to Wan.
    for other in ("frames", "animatediff"):
        assert digest({"pipeline": other, "resolution": "720p", "vace_control": "depth"}) == digest({"pipeline": other})
        assert "resolution" not in settings({"pipeline": other})["params"]
    assert digest({**wan, "context_length": 24, "context_stride": 8}) == digest(wan)
    # Left out, spelled out, or as Wan resolves them: the same settings.
    assert digest({**wan, "resolution": "480p"}) == digest(wan)
    assert digest({**wan, "vace_control": "pose"}) == digest(wan)
    assert digest({**wan, "vace_control": "pose_over_depth"}, uses_depth=True) == digest(wan, uses_depth=True)
    assert digest(wan, segment=81) == digest(wan) and settings(wan)["params"]["segment"] == 81
    assert digest(wan, segment=33) != digest(wan)
    # AnimateDiff's hash is as before: no segment is no segment, not a default length.
    assert settings({"pipeline": "animatediff"})["params"]["segment"] is None
    # The depth ControlNet's scale is not Wan's: its depth is the control video itself.
    assert digest({**wan, "depth_scale": 0.3}, uses_depth=True) == digest(wan, uses_depth=True)


def test_only_the_models_a_pipeline_runs_are_part_of_its_settings():
    with_wan = {**HEALTH, "models": {**HEALTH["models"], "wan_model": "wan-a"}}
    unavailable = {**HEALTH, "models": {**HEALTH["models"], "wan_model": "wan-a", "wan_unavailable": "not cached"}}

    def digest(params, health):
        return job_folder.settings_hash(generation_settings(params, health, False))

    # A backend started with or without Wan leaves the SD1.5 pipelines' frames done.
    for pipeline in ("frames", "animatediff"):
        assert digest({"pipeline": pipeline}, with_wan) == digest({"pipeline": pipeline}, HEALTH)
        assert digest({"pipeline": pipeline}, unavailable) == digest({"pipeline": pipeline}, HEALTH)
    wan = {"pipeline": "wan-vace"}
    assert generation_settings(wan, with_wan, False)["models"] == {"wan_model": "wan-a"}
    other_base = {**with_wan, "models": {**with_wan["models"], "model": "base-b"}}
    assert digest(wan, other_base) == digest(wan, with_wan)
    other_wan = {**with_wan, "models": {**with_wan["models"], "wan_model": "wan-b"}}
    assert digest(wan, other_wan) != digest(wan, with_wan)


def test_a_changed_wan_resolution_makes_the_frames_stale(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2]))
    out = tmp_path / "out"
    _generate(out, _settings(controls, pipeline="wan-vace"), controls)
    p = plan(out, _settings(controls, pipeline="wan-vace", resolution="720p"), controls)
    assert p.stale == [1, 2] and p.stale_reasons[1] == "made with other settings (resolution)"
    frames_out = tmp_path / "frames"
    _generate(frames_out, _settings(controls, pipeline="frames"), controls)
    p = plan(frames_out, _settings(controls, pipeline="frames", resolution="720p"), controls)
    assert p.done == [1, 2]


def test_files_without_a_record_or_with_an_unreadable_manifest_are_stale(tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2]))
    out = tmp_path / "out"
    out.mkdir()
    write_png(output_path(out, 1), _image(1))  # someone's file, not ours
    p = plan(out, _settings(controls), controls)
    assert (p.missing, p.stale) == ([2], [1])
    assert p.stale_reasons[1] == "no record in the manifest of how it was made"

    (out / "generation.json").write_text("{not json")
    p = plan(out, _settings(controls), controls)
    assert p.stale == [1] and "could not be read" in p.notes[0]


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_files(tmp_path, monkeypatch):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    out = tmp_path / "out"
    settings = _settings(controls, seed=1)
    _generate(out, settings, controls)
    old = output_path(out, 1).read_bytes()
    manifest = (out / "generation.json").read_bytes()
    p = plan(out, _settings(controls, seed=2), controls)
    writer = FrameWriter(p, overwrite=True)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_file.os, "replace", broken_replace)  # the one atomic writer
    with pytest.raises(OSError, match="No space left"):
        writer.write(1, encode_png(_image(5)))
    assert output_path(out, 1).read_bytes() == old
    assert (out / "generation.json").read_bytes() == manifest
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "generation.json"]


def test_manifest_keeps_records_of_other_frames_and_drops_unused_settings(tmp_path):
    poses = write_poses(tmp_path / "poses", [1, 2, 3])
    out = tmp_path / "out"
    all_frames = control_frames(poses)
    _generate(out, _settings(all_frames, seed=1), all_frames)
    first = control_frames(poses, frames=[1])
    _generate(out, _settings(first, seed=2), first, overwrite=True)
    manifest = json.loads((out / "generation.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3"]
    assert len(manifest["settings"]) == 2  # seed 1 (frames 2, 3) and seed 2 (frame 1)
    _generate(out, _settings(all_frames, seed=2), all_frames, overwrite=True)
    manifest = json.loads((out / "generation.json").read_text())
    assert len(manifest["settings"]) == 1


def test_plan_checks_its_inputs(tmp_path):
    pose = tmp_path / "pose_0001.png"
    write_png(pose, _image(1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ControlFolderError, match="not a folder"):
        plan(tmp_path / "file", {}, [ControlFrame(1, pose)])
    with pytest.raises(ControlFolderError, match="frame 1 is given twice"):
        plan(tmp_path / "out", {}, [ControlFrame(1, pose), ControlFrame(1, pose)])
    with pytest.raises(ControlFolderError, match="cannot be read"):
        plan(tmp_path / "out", {}, [ControlFrame(2, tmp_path / "pose_0002.png")])


def test_a_previews_pixels_are_the_backends_preview_settings_not_the_panels_steps():
    def digest(params, health=HEALTH):
        return job_folder.settings_hash(generation_settings(params, health, False))

    lcm = {**HEALTH, "preview": {"lora": "latent-consistency/lcm-lora-sdv1-5", "steps": 4, "guidance": 1.0}}
    preview = {"preview": True, "pipeline": "frames"}
    assert digest({**preview, "steps": 30, "guidance": 9.0}, lcm) == digest(preview, lcm), "the backend's steps run"
    assert digest(preview, lcm) != digest({"pipeline": "frames"}, lcm), "a preview is not the final"
    other = {**lcm, "preview": {**lcm["preview"], "steps": 6}}
    assert digest(preview, other) != digest(preview, lcm), "another preview LoRA or step count: stale"
    # A backend that learnt of previews leaves final frames' settings as they were.
    assert digest({"seed": 3}, lcm) == digest({"seed": 3}, HEALTH)
    assert generation_settings(preview, lcm, False)["params"]["preview"] == {**lcm["preview"], "lora_sha256": None}


def test_a_retrained_preview_lora_file_makes_previews_stale(tmp_path):
    lora = tmp_path / "lcm.safetensors"
    lora.write_bytes(b"first")
    health = {**HEALTH, "preview": {"lora": str(lora), "steps": 4, "guidance": 1.0}}
    first = job_folder.settings_hash(generation_settings({"preview": True}, health, False))
    lora.write_bytes(b"trained further")
    assert job_folder.settings_hash(generation_settings({"preview": True}, health, False)) != first

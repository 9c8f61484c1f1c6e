"""Wan 2.1 VACE (issue 11) on the tiny random-weight Wan VACE pipeline (backend/tiny_wan.py):
the model's size, length and flow-shift rules, the control video and its mask, known frames, the
reference image, seeds, loading on first use, cancel, and the HTTP API on the session's backend."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from posebridge.backend.pipelines import GenerateParams, GenerationCancelled, Hooks, generate, make_request  # noqa: E402
from posebridge.backend.pipelines import wan_vace  # noqa: E402
from conftest import load_tiny  # noqa: E402

FAST = dict(pipeline="wan-vace", resolution="maps", steps=2, guidance=5.0, prompt="a man walking")


def poses(count, size=(64, 48), seed=0):
    """Pose-map-like frames: a coloured bar moving across black, so frames differ."""
    width, height = size
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        x = (4 + 2 * i + seed) % (width - 8)
        frame[4 : height - 4, x : x + 6] = (255, 80 + (7 * i) % 170, 0)
        frame[height // 2 : height // 2 + 4, 4 : width - 4] = (0, 200, 255)
        frames.append(frame)
    return frames


def make(models, frames, **options):
    params = GenerateParams(**{**FAST, **options.pop("params", {})})
    return dict(generate(models, frames, options.pop("depths", None), params, **options))


class CallSpy:
    """The real Wan pipeline, with the arguments of each call kept (``error``: raised instead)."""

    def __init__(self, pipe):
        self.pipe, self.calls, self.error = pipe, [], None

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __setattr__(self, name, value):
        if name in ("pipe", "calls", "error"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.pipe, name, value)

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.pipe(**kwargs)


@pytest.fixture
def spy(wan_models, monkeypatch):
    spy = CallSpy(wan_models.wan.pipeline())
    monkeypatch.setattr(wan_models.wan, "_pipe", spy)
    return spy


# --- the model's rules (pure) -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(512, 512), (1920, 1080), (768, 1024), (832, 480)])
def test_model_size_keeps_the_aspect_at_the_resolutions_area(size):
    for resolution, (target_h, target_w) in wan_vace.RESOLUTION_SIZES.items():
        width, height = wan_vace.model_size(*size, resolution)
        assert width % 16 == 0 and height % 16 == 0
        assert abs(width * height / (target_w * target_h) - 1) < 0.06
        assert abs((width / height) / (size[0] / size[1]) - 1) < 0.04
    assert wan_vace.model_size(832, 480, "480p") == (832, 480)
    assert wan_vace.model_size(1280, 720, "720p") == (1280, 720)
    assert wan_vace.model_size(72, 40, "maps") == (80, 48)  # its own size, to multiples of 16


def test_frame_counts_pad_to_4k_plus_1_and_flow_shift_follows_the_area():
    assert [wan_vace.padded_length(n) for n in (1, 2, 5, 33, 34, 81, 100)] == [1, 5, 5, 33, 37, 81, 101]
    assert wan_vace.flow_shift((832, 480), "480p") == 3.0 and wan_vace.flow_shift((1280, 720), "720p") == 5.0
    assert wan_vace.flow_shift((640, 640), "maps") == 3.0 and wan_vace.flow_shift((1280, 704), "maps") == 5.0


def test_flow_shift_is_set_on_the_models_own_scheduler(wan_models):
    scheduler = wan_models.wan.pipeline().scheduler
    shifted = wan_vace.scheduler_for(scheduler, 5.0)
    assert type(shifted) is type(scheduler) and shifted.config.flow_shift == 5.0
    assert shifted.config.use_flow_sigmas == scheduler.config.use_flow_sigmas
    assert wan_vace.scheduler_for(shifted, 5.0) is shifted


def test_pose_over_depth_keeps_the_skeleton_and_the_set():
    pose = Image.fromarray(poses(1)[0])
    depth = Image.fromarray(np.full((48, 64, 3), 90, np.uint8))
    merged = np.asarray(wan_vace.pose_over_depth(pose, depth))
    skeleton = np.asarray(pose).max(axis=2) > 0
    assert (merged[skeleton] == np.asarray(pose)[skeleton]).all()
    assert (merged[~skeleton] == 90).all()


def test_memory_advice_names_what_to_lower():
    text = wan_vace.memory_advice(81, (1280, 720), "720p")
    assert "81 frames at 1280x720" in text and "480p" in text and "--cpu-offload" in text
    assert "480p," not in wan_vace.memory_advice(81, (832, 480), "480p")


# --- generation ---------------------------------------------------------------------------------


def test_a_33_frame_job_gives_33_frames_at_the_pose_maps_size(wan_models, spy):
    frames = make(wan_models, poses(33, size=(72, 40)))
    assert sorted(frames) == list(range(33))
    assert all(f.shape == (40, 72, 3) and f.dtype == np.uint8 for f in frames.values())
    assert np.stack(list(frames.values())).std() > 5  # not a blank
    call = spy.calls[-1]
    assert (call["width"], call["height"], call["num_frames"]) == (80, 48, 33)
    assert all(m.getextrema() == (255, 255) for m in call["mask"])  # everything generated


def test_an_odd_length_and_size_are_handled(wan_models, spy):
    frames = make(wan_models, poses(11, size=(70, 42)))  # not even multiples of 8
    assert sorted(frames) == list(range(11)) and frames[0].shape == (42, 70, 3)
    assert spy.calls[-1]["num_frames"] == 13 and len(spy.calls[-1]["video"]) == 13


def test_same_seed_same_frames_another_seed_other_frames(wan_models):
    clip = poses(9)
    first, again = make(wan_models, clip), make(wan_models, clip)
    other = make(wan_models, clip, params={"seed": 7})
    assert all(np.array_equal(first[i], again[i]) for i in first)
    assert np.abs(np.stack(list(first.values())).astype(int) - np.stack(list(other.values()))).mean() > 1


def test_the_pose_maps_steer_the_frames(wan_models):
    a = make(wan_models, poses(9))
    b = make(wan_models, poses(9, seed=20))
    assert np.abs(np.stack(list(a.values())).astype(int) - np.stack(list(b.values()))).mean() > 1


def test_known_frames_go_in_as_themselves_under_black_and_are_not_made_again(wan_models, spy):
    clip = poses(33)
    first = make(wan_models, clip[:33])
    # The next segment: the first one's last 5 frames lead, then 28 new frames.
    following = poses(33, seed=11)
    segment = clip[28:33] + following[:28]
    known = {i: first[28 + i] for i in range(5)}
    second = make(wan_models, segment, known=known)
    assert sorted(second) == list(range(5, 33))
    call = spy.calls[-1]
    for i in range(5):
        assert np.array_equal(np.asarray(call["video"][i]), first[28 + i])  # same size: no resampling
        assert call["mask"][i].getextrema() == (0, 0)
    assert all(m.getextrema() == (255, 255) for m in call["mask"][5:])
    alone = make(wan_models, segment)  # the same frames without the lead: a different video
    assert np.abs(np.stack([second[i] for i in range(5, 33)]).astype(int)
                  - np.stack([alone[i] for i in range(5, 33)])).mean() > 0.5


def test_clips_of_a_long_request_overlap_by_the_lead():
    assert [(r.start, r.stop) for r in wan_vace.clips(100, 33)] == [(0, 33), (28, 61), (56, 89), (84, 100)]
    assert [(r.start, r.stop) for r in wan_vace.clips(81, 81)] == [(0, 81)]
    assert [(r.start, r.stop) for r in wan_vace.clips(82, 81)] == [(0, 81), (76, 82)]


def test_a_request_longer_than_its_segment_is_made_clip_after_clip(wan_models, spy):
    finished = []
    clip = poses(20)
    frames = make(wan_models, clip, params={"segment": 9}, on_segment_done=lambda: finished.append(len(spy.calls)))
    assert sorted(frames) == list(range(20)) and finished == [1, 2, 3, 4]
    calls = spy.calls[-4:]
    assert [c["num_frames"] for c in calls] == [9, 9, 9, 9]  # 8 frames padded to 9 for the last
    for call, start in zip(calls[1:], (4, 8, 12)):
        # Each clip after the first continues from the 5 frames made before it, under black.
        for i in range(5):
            assert np.array_equal(np.asarray(call["video"][i]), frames[start + i])
            assert call["mask"][i].getextrema() == (0, 0)
    whole = make(wan_models, clip)  # one clip of 20 (padded to 21): another video
    assert any(not np.array_equal(whole[i], frames[i]) for i in range(9, 20))


def test_a_reference_image_changes_the_frames_and_transparency_counts_as_white(wan_models, spy):
    clip = poses(9)
    plain = make(wan_models, clip)
    rng = np.random.default_rng(3)
    character = rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)
    on_white = np.full((48, 48, 3), 255, np.uint8)
    on_white[4:44, 12:36] = character
    cut_out = np.zeros((48, 48, 4), np.uint8)  # the same character on transparency
    cut_out[4:44, 12:36, :3] = character
    cut_out[4:44, 12:36, 3] = 255
    with_reference = make(wan_models, clip, reference=on_white)
    assert np.abs(np.stack(list(plain.values())).astype(int) - np.stack(list(with_reference.values()))).mean() > 1
    from_cut_out = make(wan_models, clip, reference=cut_out)
    assert all(np.array_equal(with_reference[i], from_cut_out[i]) for i in plain)
    assert np.asarray(spy.calls[-1]["reference_images"])[0, 0].tolist() == [255, 255, 255]
    off = make(wan_models, clip, reference=on_white, params={"identity_scale": 0.0})
    assert all(np.array_equal(plain[i], off[i]) for i in plain)


def test_depth_as_the_control_video(wan_models, spy):
    clip = poses(5)
    depths = [np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (48, 1, 3)) for _ in clip]
    make(wan_models, clip, depths=depths)
    video = np.asarray(spy.calls[-1]["video"][0])
    skeleton = clip[0].max(axis=2) > 0
    assert np.array_equal(video[skeleton], clip[0][skeleton])  # default with depth: pose over depth
    assert np.array_equal(video[~skeleton], depths[0][~skeleton])
    make(wan_models, clip, depths=depths, params={"vace_control": "depth"})
    assert np.array_equal(np.asarray(spy.calls[-1]["video"][0]), depths[0])
    with pytest.raises(ValueError, match="vace_control 'depth' needs depth frames"):
        make(wan_models, clip, params={"vace_control": "depth"})


@pytest.mark.parametrize("params,needle", [
    ({"prompt": "0: a knight | 8: a robot"}, "wan-vace takes one prompt"),
    ({"control_end": 0.5}, "control acts on every step"),
    ({"resolution": "1080p"}, "resolution must be one of 480p, 720p, maps"),
    ({"vace_control": "edges"}, "vace_control must be one of pose, depth, pose_over_depth"),
    ({"segment": 8}, "segment must be at least 9 frames for wan-vace"),
    ({"segment": 9, "pipeline": "frames"}, "segment is for wan-vace, not frames"),
])
def test_what_wan_cannot_honour_is_refused_before_it_runs(wan_models, params, needle):
    with pytest.raises(ValueError, match=needle):
        make_request(wan_models, poses(5), None, GenerateParams(**{**FAST, **params}))


def test_out_of_gpu_memory_names_what_to_lower(wan_models, spy):
    spy.error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(wan_vace.GpuMemoryError, match="out of GPU memory making 9 frames at 64x48 .maps.: lower the"
                                                      " segment length .* --cpu-offload"):
        make(wan_models, poses(9))


def test_the_client_and_the_backend_agree_on_wans_rules():
    """The add-on cannot import the backend's pipelines (torch): its copies of the names and
    numbers must be the same."""
    from posebridge.backend.api_models import JobParams
    from posebridge.backend.pipelines import base
    from posebridge.generate import job_folder, videos

    assert videos.WAN_VACE == base.WAN_VACE and job_folder.PIPELINE_NAMES == ("animatediff", "frames", "wan-vace")
    assert set(job_folder.PIPELINE_NAMES) == set(base.PIPELINE_NAMES)
    assert (videos.WAN_SEGMENT, videos.WAN_LEAD) == (wan_vace.DEFAULT_SEGMENT, wan_vace.LEAD)
    assert videos.WAN_LEAD + videos.WAN_MIN_NEW == JobParams.model_fields["segment"].metadata[0].ge
    assert job_folder.WAN_RESOLUTIONS == base.RESOLUTIONS and job_folder.VACE_CONTROLS == base.VACE_CONTROLS
    assert job_folder.PARAM_DEFAULTS["resolution"] == base.GenerateParams().resolution


def test_cancel_at_a_step(wan_models):
    calls = []

    def stop():
        calls.append(1)
        return True

    with pytest.raises(GenerationCancelled):
        make(wan_models, poses(5), should_stop=stop)
    assert len(calls) == 1


def test_the_model_loads_on_its_first_job_once(tiny_model, tiny_wan):
    models = load_tiny(tiny_model, wan_model=str(tiny_wan))
    assert "wan-vace" in models.pipelines and models.wan.loads == 0 and not models.wan.loaded
    hooks = Hooks()
    make(models, poses(5), hooks=hooks)
    make(models, poses(5), hooks=hooks)
    assert models.wan.loads == 1 and hooks.counters["wan_calls"] == 2


def test_an_uncached_hub_model_offline_is_left_out_and_says_why(tiny_model):
    models = load_tiny(tiny_model, wan_model="Wan-AI/Wan2.1-VACE-1.3B-diffusers", cache_dir="/nonexistent-hf-cache")
    assert "wan-vace" not in models.pipelines and models.wan is None
    assert "not in the Hugging Face cache" in models.models["wan_unavailable"]
    with pytest.raises(ValueError, match="wan-vace needs a Wan VACE model"):
        make(models, poses(5))


# --- over HTTP (the session's backend: the tiny set with its Wan VACE) --------------------------


def http_body(count, **params):
    from test_server import png_b64

    frames = [{"frame": n + 1, "pose": png_b64(p)} for n, p in enumerate(poses(count))]
    return {"name": "wan", "params": {**FAST, **params}, "frames": frames}


def test_a_wan_job_over_http(backend_server):
    from test_server import call_json, png_b64, run_job

    status, health = call_json(backend_server, "GET", "/health", token=None)
    assert "wan-vace" in health["pipelines"] and health["models"]["wan_model"].endswith("wan-vace")
    body = http_body(9)
    job, frames = run_job(backend_server, body)
    assert job["frames_done"] == list(range(1, 10)) and frames[0].shape == (48, 64, 3)
    assert job["params"]["resolution"] == "maps"
    assert call_json(backend_server, "GET", "/health", token=None)[1]["wan_loaded"] is True
    lead = [{"frame": n, "pose": png_b64(poses(9)[n - 1]), "image": png_b64(frames[n - 1])} for n in range(5, 10)]
    more = http_body(4)
    for i, frame in enumerate(more["frames"]):
        frame["frame"] = 10 + i
    job, _ = run_job(backend_server, {**more, "lead": lead})
    assert job["frames_done"] == [10, 11, 12, 13]


@pytest.mark.parametrize("params,code,needle", [
    ({"resolution": "1080p"}, 422, "params.resolution"),
    ({"vace_control": "depth"}, 400, "params.vace_control 'depth' needs depth frames"),
    ({"prompt": "1: a | 5: b"}, 400, "wan-vace takes one prompt"),
])
def test_bad_wan_requests_name_the_problem(backend_server, params, code, needle):
    from test_server import expect_error

    expect_error(backend_server, http_body(3, **params), code, needle)

"""The HTTP API of issue 9 over real HTTP: pipeline choice, context windows, identity reference,
prompt travel and lead frames, on the session's backend (tiny model with its motion adapter and
IP-Adapter)."""
import numpy as np
import pytest

pytest.importorskip("torch")

from test_server import call_json, expect_error, job_body, png_b64, pose, run_job  # noqa: E402


def mean_diff(a, b) -> float:
    return float(np.abs(np.stack(a).astype(np.int16) - np.stack(b).astype(np.int16)).mean())


def test_default_pipeline_is_animatediff_and_params_echo_it(backend_server):
    job, frames = run_job(backend_server, job_body([1, 2, 3, 4, 5]))
    assert job["params"]["pipeline"] == "animatediff"
    assert job["params"]["context_length"] == 16 and job["params"]["context_stride"] == 4
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3)
    _, per_frame = run_job(backend_server, job_body([1, 2, 3, 4, 5], pipeline="frames"))
    assert mean_diff(frames, per_frame) > 1.0


def test_windows_reference_and_prompt_travel_over_http(backend_server):
    numbers = list(range(10, 20))
    body = job_body(numbers, pipeline="animatediff", context_length=4, context_stride=2)
    job, plain = run_job(backend_server, body)
    assert job["frames_done"] == numbers

    reference = png_b64(np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    _, with_reference = run_job(backend_server, {**body, "reference": reference})
    assert mean_diff(plain, with_reference) > 0.5
    off = {**body, "reference": reference, "params": {**body["params"], "identity_scale": 0.0}}
    assert mean_diff(plain, run_job(backend_server, off)[1]) == 0.0

    travel = {**body, "params": {**body["params"], "prompt": "10: a knight | 19: a robot"}}
    as_map = {**body, "params": {**body["params"], "prompts": {"10": "a knight", "19": "a robot"}}}
    a, b = run_job(backend_server, travel)[1], run_job(backend_server, as_map)[1]
    assert mean_diff(a, b) == 0.0 and mean_diff(a, plain) > 0.5


def test_lead_frames_are_not_made_again(backend_server):
    _, first = run_job(backend_server, job_body([1, 2, 3, 4]))
    lead = [{"frame": n, "pose": png_b64(pose(4 * (n - 1))), "image": png_b64(first[n - 1])} for n in (3, 4)]
    body = job_body([5, 6, 7], shifts=[16, 20, 24])
    job, frames = run_job(backend_server, {**body, "lead": lead})
    assert job["frames"] == [5, 6, 7] and job["frames_done"] == [5, 6, 7] and len(frames) == 3
    status, answer = call_json(backend_server, "GET", f"/jobs/{job['id']}/frames/4")
    assert status == 404


@pytest.mark.parametrize("change,code,needle", [
    ({"params": {"pipeline": "video"}}, 422, "params.pipeline"),
    ({"params": {"context_length": 8, "context_stride": 9}}, 422, "context_stride (9) must not exceed context_length (8)"),
    ({"params": {"pipeline": "animatediff", "context_length": 48}}, 400, "longer than the motion module sees (32 frames)"),
    ({"params": {"prompt": "0: a | b"}}, 400, "params.prompt: prompt schedule part 'b'"),
    ({"reference": "not base64!"}, 400, "reference is not an image"),
    ({"params": {"pipeline": "frames"}, "lead": "LEAD"}, 400, "lead frames need a temporal pipeline"),
    ({"lead": "LATE"}, 400, "lead frames must come before the job's frames"),
])
def test_bad_video_requests_name_the_problem(backend_server, change, code, needle):
    body = job_body([1, 2])
    lead = {"LEAD": [{"frame": 0, "pose": png_b64(pose(0)), "image": png_b64(pose(0))}],
            "LATE": [{"frame": 9, "pose": png_b64(pose(0)), "image": png_b64(pose(0))}]}
    for key, value in change.items():
        if key == "params":
            body["params"] = {**body["params"], **value}
        else:
            body[key] = lead.get(value, value)
    expect_error(backend_server, body, code, needle)


def test_health_lists_the_pipelines(backend_server):
    status, health = call_json(backend_server, "GET", "/health", token=None)
    assert status == 200 and health["pipelines"] == ["animatediff", "frames", "wan-vace"]
    assert health["has_ip_adapter"] is True and health["max_context_length"] == 32

"""The fast preview (issue 14) on the tiny models, whose sets carry a random LoRA standing in for
LCM-LoRA: a preview job runs the per-frame pipeline with LCM's scheduler, the preview's few steps
and no classifier-free guidance, the preview LoRA on top of the job's own; final jobs before and
after are untouched; a backend without a preview says why; /health and the API carry it."""
import json
import urllib.request

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from posebridge.backend.model_loading import write_tiny_model_set, write_tiny_sdxl_set  # noqa: E402
from posebridge.backend.model_set import read_model_set  # noqa: E402
from posebridge.backend.models import load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from posebridge.backend.preview import PREVIEW_STEPS, preview_unavailable  # noqa: E402
from frames_of import frames_of  # noqa: E402
from test_pipeline import POSES, mean_diff  # noqa: E402

FINAL = GenerateParams(prompt="a dancer", negative="blurry", seed=4, steps=6, guidance=6.0, batch=2)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("preview-sets")
    write_tiny_model_set(root / "sd15")
    write_tiny_sdxl_set(root / "sdxl")
    return root


def _load(folder, **options):
    model_set = read_model_set(folder)
    return load_models(model_set.base, model_set.openpose, model_set.depth, device="cpu", local_files_only=True,
                       preview_lora=model_set.preview_lora, **options)


@pytest.fixture(scope="module")
def models(sets):
    return _load(sets / "sd15", motion_adapter=read_model_set(sets / "sd15").motion_adapter)


def _run(models, params, poses=POSES[:3]):
    """(frames, progress totals seen, batch sizes the UNet saw)."""
    totals, batches = [], []
    hook = models.pose_pipe.unet.register_forward_hook(lambda _m, args, _o: batches.append(args[0].shape[0]))
    try:
        frames = frames_of(generate(models, poses, None, params, on_progress=lambda d, t: totals.append(t)))
    finally:
        hook.remove()
    return np.stack(frames), totals, batches


def test_a_preview_runs_few_lcm_steps_without_guidance_and_leaves_final_jobs_alone(models):
    final, final_totals, final_batches = _run(models, FINAL)
    preview, totals, batches = _run(models, GenerateParams(**{**FINAL.__dict__, "preview": True}))
    assert totals[-1] == 3 * PREVIEW_STEPS and final_totals[-1] == 3 * FINAL.steps
    assert batches == [2] * PREVIEW_STEPS + [1] * PREVIEW_STEPS, "no guidance: one UNet pass per frame and step"
    assert final_batches == [4] * FINAL.steps + [2] * FINAL.steps
    assert preview.shape == final.shape and mean_diff(preview, final) > 1.0
    twin = models.preview_pipes[id(models.pose_pipe)]
    assert type(twin.scheduler).__name__ == "LCMScheduler" and twin.unet is models.pose_pipe.unet
    assert type(models.pose_pipe.scheduler).__name__ == "DDIMScheduler", "the final pipeline keeps its scheduler"
    again, _, _ = _run(models, FINAL)
    np.testing.assert_array_equal(again, final, "the preview LoRA is off for final jobs")
    loads = models.loras.loads
    _run(models, GenerateParams(**{**FINAL.__dict__, "preview": True}))
    assert models.loras.loads == loads, "the preview LoRA is read once"


def test_a_preview_asked_of_animatediff_runs_per_frame_with_the_jobs_loras(models, tmp_path):
    from test_loras import write_diffusers_lora

    lora = write_diffusers_lora(models, tmp_path / "style.safetensors", seed=9)
    params = GenerateParams(**{**FINAL.__dict__, "preview": True, "pipeline": "animatediff", "context_length": 2,
                               "context_stride": 1, "loras": ((lora, 1.0),)})
    styled, totals, _ = _run(models, params)
    assert totals[-1] == 3 * PREVIEW_STEPS, "per frame, the preview's steps"
    assert {source for source, _ in models.loras.active} == {lora, models.preview.lora}
    plain, _, _ = _run(models, GenerateParams(**{**FINAL.__dict__, "preview": True}))
    assert mean_diff(styled, plain) > 1.0, "the job's own LoRA shows in its preview"


def test_sdxl_previews_too(sets):
    models = _load(sets / "sdxl")
    assert models.family == "sdxl" and models.preview is not None
    preview, totals, batches = _run(models, GenerateParams(**{**FINAL.__dict__, "preview": True}), POSES[:2])
    assert preview.shape == (2, 64, 64, 3) and totals[-1] == 2 * PREVIEW_STEPS and batches == [2] * PREVIEW_STEPS


def test_without_a_preview_lora_a_preview_is_refused_naming_why(sets, tmp_path):
    model_set = read_model_set(sets / "sd15")
    plain = load_models(model_set.base, model_set.openpose, None, device="cpu", local_files_only=True)
    with pytest.raises(ValueError, match="no fast preview: it was started with --preview-lora none"):
        _run(plain, GenerateParams(preview=True, steps=2))
    missing = load_models(model_set.base, model_set.openpose, None, device="cpu", local_files_only=True,
                          preview_lora=str(tmp_path / "lcm.safetensors"))
    assert missing.preview is None and "no such file" in missing.preview_unavailable
    reason = preview_unavailable("no-such-owner/lcm-lora", local_files_only=True, cache_dir=tmp_path / "empty")
    assert "not in the Hugging Face cache and the backend is offline" in reason
    assert preview_unavailable("no-such-owner/lcm-lora", local_files_only=False) is None, "online: fetched when used"


def test_health_names_the_preview_and_a_preview_job_runs_over_http(tmp_path):
    import backend_process
    from test_server import call_json, job_body, run_job

    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    with backend_process.start_backend(tmp_path) as server:
        with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
            health = json.loads(response.read())
        status, frames = run_job(server, job_body([0, 1], steps=3, preview=True))
    assert health["preview"]["steps"] == PREVIEW_STEPS and health["preview"]["lora"].endswith("preview-lora.safetensors")
    assert health["preview_unavailable"] is None
    assert status["state"] == "done" and len(frames) == 2
    with backend_process.start_backend(tmp_path / "without", extra_args=("--preview-lora", "none")) as server:
        code, body = call_json(server, "POST", "/jobs", job_body([0], preview=True))
    assert code == 400 and "params.preview: this backend has no fast preview" in body["detail"], body


def test_a_file_in_a_hugging_face_repository_is_an_id_not_a_missing_path():
    hyper = "ByteDance/Hyper-SD/Hyper-SDXL-8steps-lora.safetensors"
    assert preview_unavailable(hyper, local_files_only=False) is None, "online: fetched on the first preview"
    assert "not in the Hugging Face cache" in preview_unavailable(hyper, local_files_only=True,
                                                                 cache_dir="/nonexistent-hf-cache")
    assert "no such file" in preview_unavailable("./lcm.safetensors", local_files_only=False)

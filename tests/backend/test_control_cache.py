"""The conditioning-embedding cache: same frames as without it, one embedding per call."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from posebridge.backend.control_cache import CachedConditioningEmbedding  # noqa: E402
from posebridge.backend.models import load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402

from test_pipeline import POSES, depth_ramp  # noqa: E402  (same folder: pytest's rootdir-less import)

PARAMS = GenerateParams(prompt="a dancer", negative="blurry", seed=3, steps=4, guidance=5.0, batch=2)


@pytest.fixture(scope="module")
def own_pipe(tiny_model):
    """A pipeline of its own: the tests unwrap and rewrap its caches."""
    return load_models(str(tiny_model.base), str(tiny_model.openpose), str(tiny_model.depth),
                         device="cpu", local_files_only=True)


def _controlnets(pipe):
    """Pose and depth ControlNets, once each (both pipelines share the pose one)."""
    nets = [pipe.pose_pipe.controlnet, *pipe.pose_depth_pipe.controlnet.nets]
    return list({id(net): net for net in nets}.values())


def test_every_controlnet_is_loaded_with_the_cache(own_pipe):
    for net in _controlnets(own_pipe):
        assert isinstance(net.controlnet_cond_embedding, CachedConditioningEmbedding)


@pytest.mark.parametrize("with_depth", [False, True])
def test_frames_are_the_same_with_and_without_the_cache(own_pipe, with_depth):
    depths = [depth_ramp("x"), depth_ramp("y"), depth_ramp("x")] if with_depth else None
    cached = frames_of(generate(own_pipe, POSES[:3], depths, PARAMS))
    wrappers = {}
    for net in _controlnets(own_pipe):
        wrappers[net] = net.controlnet_cond_embedding
        net.controlnet_cond_embedding = wrappers[net].embedding
    try:
        plain = frames_of(generate(own_pipe, POSES[:3], depths, PARAMS))
    finally:
        for net, wrapper in wrappers.items():
            net.controlnet_cond_embedding = wrapper
    # Equal up to floating point: half a batch may take another convolution kernel than a whole
    # one, which can move a rounding boundary by one level.
    for a, b in zip(cached, plain):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1 and diff.mean() < 0.01


def test_each_control_image_is_embedded_once_per_call_and_nothing_is_kept(own_pipe):
    wrapper = own_pipe.pose_pipe.controlnet.controlnet_cond_embedding
    batches = []
    handle = wrapper.embedding.register_forward_hook(lambda _m, args, _out: batches.append(args[0].shape[0]))
    try:
        frames_of(generate(own_pipe, POSES[:4], None, PARAMS))
    finally:
        handle.remove()
    # Two pipeline calls (batch 2) of 4 steps with guidance: one embedding of 2 images each,
    # where diffusers alone embeds 4 images (both guidance halves) at every step.
    assert batches == [2, 2]
    assert wrapper._entries == []

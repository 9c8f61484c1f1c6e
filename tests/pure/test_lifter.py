"""The numpy lifter: equal to the torch network it was exported from, and better than the flat
reading on a held-out CMU walk seen from the side."""
import numpy as np
import pytest

from retarget import lifter as lifter_module

WEIGHTS = lifter_module.WEIGHTS
needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason="retarget/lifter_weights.npz absent")


def test_numpy_inference_equals_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from train.train_lifter import TemporalLifter, export

    torch.manual_seed(0)
    model = TemporalLifter(channels=32)
    for module in model.modules():  # non-trivial batch-norm statistics to fold
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    path = tmp_path / "w.npz"
    export(model, path, {})
    features = np.random.default_rng(1).normal(size=(60, lifter_module.FEATURES)).astype(np.float32)
    padded = np.pad(features, ((13, 13), (0, 0)), mode="edge")
    with torch.no_grad():
        expected = model(torch.from_numpy(padded.T.copy())[None])[0].numpy().T
    got = lifter_module.Lifter(path).run_features(features)
    # float16 storage of the weights is the only difference
    assert np.abs(got - expected).max() < 2e-2 * max(1.0, np.abs(expected).max())


@needs_weights
def test_shipped_weights_load_and_run_on_a_clip_with_gaps():
    net = lifter_module.load()
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(800, 1100, size=(40, 18, 2)), np.ones((40, 18, 1))], axis=-1)
    kp[5:9, :, 2] = 0.0  # a few frames with nothing detected
    joints, towards, confidence = net(kp, focal=1500.0, centre=(960.0, 540.0))
    assert joints.shape == (40, 18, 3) and towards.shape == (40, 8) and confidence.shape == (40,)
    assert np.isfinite(joints).all() and ((confidence >= 0.5) & (confidence <= 1.0)).all()


@needs_weights
def test_walk_over_five_views_beats_the_flat_reading_and_mostly_gets_depth_signs_right(shared_data):
    from train.evaluate import VIEWS, clip_world, measure

    clip = shared_data / "cmu" / "07_01.bvh"
    if not clip.exists():
        pytest.skip("shared CMU clip absent")
    world = clip_world(clip)
    results = [measure(lifter_module.load(), world, view) for view in VIEWS]
    assert np.mean([r["hybrid_mean"] for r in results]) < np.mean([r["flat_mean"] for r in results])
    deep = sum(r["deep_limbs"] for r in results)
    wrong = sum(r["wrong_sign"] * r["deep_limbs"] for r in results) / deep
    assert wrong < 25.0  # percent; the geometric lift alone gets about a quarter wrong


@needs_weights
def test_told_the_cameras_tilt_the_network_reads_a_high_view_better(shared_data):
    """The held-out walk seen from 45 degrees above: with the world's up direction (as the
    import passes the scene camera's tilt) the limbs' depth is nearer the capture's than from
    the keypoints alone (shipped weights: 12.1 against 14.6 degrees)."""
    from train.evaluate import clip_world, measure

    clip = shared_data / "cmu" / "07_01.bvh"
    if not clip.exists():
        pytest.skip("shared CMU clip absent")
    world = clip_world(clip)
    told, guessed = (measure(lifter_module.load(), world, "high", tilt) for tilt in ("scene", "image"))
    assert told["hybrid_mean"] < guessed["hybrid_mean"] - 1.0


def test_depth_angles_take_the_image_length_and_the_network_depth():
    """A limb seen at its full length with no depth change lies in the image plane; one that
    looks as long as it reaches in depth is 45 degrees out of it; where an end was not seen the
    network's own x, y stand in for the image's."""
    joints = np.zeros((2, lifter_module.POINTS, 3))
    features = np.zeros((2, lifter_module.FEATURES), dtype=np.float32)
    seen = features[:, : lifter_module.POINTS * 3].reshape(2, lifter_module.POINTS, 3)
    seen[:, 2] = (0.0, 0.0, 1.0)  # right shoulder at the origin, seen
    seen[0, 3] = (0.3, 0.0, 1.0)  # right elbow seen 0.3 to the right in frame 0
    joints[:, 3, 2] = (0.0, -0.3)  # network: level in frame 0, 0.3 nearer the camera in frame 1
    joints[1, 3, :2] = (0.0, 0.3)  # frame 1: elbow unseen, the network puts it 0.3 below
    features[:, : lifter_module.POINTS * 3] = seen.reshape(2, -1)
    angles = lifter_module.limb_depth_angles(joints, features)
    assert angles[0, 0] == pytest.approx(0.0)
    assert angles[1, 0] == pytest.approx(-np.pi / 4)  # towards the camera: negative


def test_the_up_direction_is_a_unit_vector_and_a_known_flag():
    assert (lifter_module.gravity_features(None, 3) == 0.0).all()  # unknown: the network reads the image
    got = lifter_module.gravity_features((0.0, -2.0, 0.0), 3)
    assert got == pytest.approx(np.tile([0.0, -1.0, 0.0, 1.0], (3, 1)))
    per_frame = lifter_module.gravity_features([[0.0, 0.0, 3.0], [np.nan, 0.0, 0.0]], 2)
    assert per_frame[0] == pytest.approx([0.0, 0.0, 1.0, 1.0]) and (per_frame[1] == 0.0).all()
    features, _, _ = lifter_module.normalise(np.ones((2, 18, 3)), 1000.0, (0.0, 0.0), up=(0.0, -1.0, 0.0))
    assert features.shape == (2, lifter_module.FEATURES) and features[0, -4:] == pytest.approx([0, -1, 0, 1])


def test_weights_from_before_the_up_input_read_only_their_own_features(tmp_path):
    """Weights exported when the input had 57 features (no up direction) still run: the
    lifter hands them the first 57 and ignores the rest."""
    torch = pytest.importorskip("torch")
    from train.train_lifter import TemporalLifter, export
    import json

    torch.manual_seed(0)
    model = TemporalLifter(channels=16)
    model.eval()
    path = tmp_path / "w.npz"
    export(model, path, {})
    with np.load(path) as data:
        arrays = dict(data)
    old = lifter_module.FEATURES - lifter_module.GRAVITY_FEATURES
    arrays["w0"] = arrays["w0"][:, :old]
    config = json.loads(bytes(arrays["config"]).decode())
    config["features"] = old
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    net = lifter_module.Lifter(tmp_path / "old.npz")
    features = np.random.default_rng(2).normal(size=(30, lifter_module.FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(net.run_features(features), net.run_features(features[:, :old]))


def test_a_blend_runs_its_members_and_weighs_their_outputs(tmp_path):
    """train/ensemble.py: one file holding several networks; the lifter's raw output is the
    weighted mean of theirs (the limbs' towards-logits too), whatever their receptive fields."""
    torch = pytest.importorskip("torch")
    from train.ensemble import combine
    from train.train_lifter import TemporalLifter, export

    paths = []
    for seed, dilations in ((0, (1, 3, 9)), (1, (1, 3))):
        torch.manual_seed(seed)
        model = TemporalLifter(channels=16, dilations=dilations)
        model.eval()
        paths.append(tmp_path / f"m{seed}.npz")
        export(model, paths[-1], {})
    combine([(paths[0], 3.0), (paths[1], 1.0)], tmp_path / "blend.npz")
    blend = lifter_module.Lifter(tmp_path / "blend.npz")
    members = [lifter_module.Lifter(path) for path in paths]
    assert blend.receptive_field == 27 and len(blend.networks) == 2
    features = np.random.default_rng(3).normal(size=(40, lifter_module.FEATURES)).astype(np.float32)
    expected = 0.75 * members[0].run_features(features) + 0.25 * members[1].run_features(features)
    np.testing.assert_allclose(blend.run_features(features), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="already a blend"):
        combine([(tmp_path / "blend.npz", 1.0)], tmp_path / "again.npz")

"""The learned depth prior of the lift (``pose.lift_prior``) without Blender: a confident
network settles each limb's towards/away reading, an unsure one changes nothing, and either way
every joint stays on its pixel (the image directions are the video's)."""
import numpy as np
import pytest

from posebridge.pose import lift_prior
from posebridge.pose.lift import LiftOptions, lift
from posebridge.pose.lift_plan import plan_lift
from posebridge.pose.lift_prior import LimbPrior, prior_cost, trust_from
from test_lift import (  # noqa: E402  (same folder: pytest's rootdir-less import)
    CAMERA, EXACT, IDX, OPENPOSE_FULL, animate, direction_errors, evaluate, keypoints_of, lifted_keypoints,
    look_at_camera, make_rig, make_rigmap, rot,
)

LIMBS = {"upper_arm": ("shoulder", "elbow"), "forearm": ("elbow", "wrist"),
         "thigh": ("hip", "knee"), "shin": ("knee", "ankle")}
DEEP = 0.34  # limbs more than 20 degrees out of the image plane


@pytest.fixture(scope="module")
def clip():
    skeleton, rigmap, camera = make_rig(), make_rigmap(), look_at_camera(**CAMERA)
    basis = animate(skeleton)
    return skeleton, rigmap, camera, basis, keypoints_of(skeleton, rigmap, basis, camera)


def towards(skeleton, rigmap, camera, basis):
    """Per limb (F,): how far it points towards the camera (+1: straight at it)."""
    points, _ = evaluate(rigmap, skeleton.names, skeleton.forward(basis), skeleton.lengths, skeleton.rest)
    back = rot.normalize(camera.to_camera[0, 2, :3])
    return {f"{s}_{kind}": rot.normalize(points[:, IDX(f"{s}_{b}")] - points[:, IDX(f"{s}_{a}")]) @ back
            for s in "lr" for kind, (a, b) in LIMBS.items()}


def test_trust_is_zero_near_a_coin_toss_and_signed_beyond():
    trust = trust_from(np.array([0.5, 0.6, 0.3, 0.85, 0.15, 1.0, 0.0]))
    np.testing.assert_allclose(trust, [0, 0, 0, 0.5, -0.5, 1, -1], atol=1e-9)


def test_cost_falls_on_the_reading_the_network_rules_out():
    to_camera = np.eye(4)[None].repeat(3, 0)  # camera +z (towards the camera) is armature +z
    candidates = np.array([[[0, 0.6, 0.8], [0, 0.6, -0.8]]] * 3)  # towards, away
    prior = LimbPrior({"l_shin": np.array([1.0, -1.0, 0.0])}, np.ones(3))
    cost = prior_cost(prior, "l", "shin", to_camera, candidates)
    assert cost[0, 1] > 0 and cost[0, 0] == 0  # sure it points towards: away costs
    assert cost[1, 0] > 0 and cost[1, 1] == 0
    assert not cost[2].any()  # no say
    assert prior_cost(prior, "r", "shin", to_camera, candidates) == 0.0  # no such limb in the prior
    assert prior_cost(None, "l", "shin", to_camera, candidates) == 0.0


def test_confident_probabilities_settle_the_limbs_and_keep_the_pixels(clip):
    """The geometric lift gets some upper arms wrong in depth; a sure network that knows better
    sets them right, and every limb keeps the video's image direction."""
    skeleton, rigmap, camera, basis, observed = clip
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    truth = towards(skeleton, rigmap, camera, basis)

    def wrong(result):
        got = towards(skeleton, rigmap, camera, result.full_basis(len(skeleton)))
        return {k: int(np.sum((np.sign(got[k]) != np.sign(truth[k])) & (np.abs(truth[k]) > DEEP))) for k in truth}

    geometric = wrong(lift(plan, observed, camera, EXACT))
    assert geometric["l_upper_arm"] + geometric["r_upper_arm"] > 0  # something to settle
    sure = {k: np.where(v > 0, 0.95, 0.05) for k, v in truth.items()}
    prior = LimbPrior({k: trust_from(p) for k, p in sure.items()}, np.full(len(observed), 0.95))
    learned = lift(plan, observed, camera, LiftOptions(depth_smoothing=0.0, limb_prior=prior))
    assert sum(wrong(learned).values()) == 0
    assert direction_errors(observed, lifted_keypoints(skeleton, rigmap, camera, learned)).max() < 0.01


def test_unsure_probabilities_change_nothing(clip):
    """A network near a coin toss (here leaning against every geometric choice) leaves the
    geometric lift exactly as it is."""
    skeleton, rigmap, camera, _, observed = clip
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    geometric = lift(plan, observed, camera, EXACT)
    chosen = towards(skeleton, rigmap, camera, geometric.full_basis(len(skeleton)))
    unsure = {k: trust_from(np.where(v > 0, 0.4, 0.6)) for k, v in chosen.items()}
    assert lift_prior.SURE > 0.6
    result = lift(plan, observed, camera, LiftOptions(depth_smoothing=0.0, limb_prior=LimbPrior(unsure, np.full(len(observed), 0.6))))
    np.testing.assert_allclose(result.basis, geometric.basis, atol=1e-12)


def test_confidence_note_names_the_unsure_frames():
    confidence = np.array([0.9, 0.6, 0.65, 0.9, 0.5, 0.9])
    note = lift_prior.confidence_note(confidence, np.arange(10, 16))
    assert note == "learned depth: 3 frames below 0.7 confidence: 11-12, 14"
    assert "every frame" in lift_prior.confidence_note(np.full(4, 0.9), np.arange(4))


def test_pinhole_reads_blenders_window_matrix():
    camera = look_at_camera(eye=(0, -4, 1), target=(0, 0, 1), lens=50.0, size=(640, 480))
    focal, centre = lift_prior.pinhole(camera.projection[0], 640, 480)
    assert focal == pytest.approx(50.0 / 36.0 * 640)
    assert centre == pytest.approx((319.5, 239.5))
    # A point on the camera's axis projects onto the principal point.
    assert camera.project(np.array([[[0.0, 0.0, 1.0]]]))[0, 0] == pytest.approx(centre)

"""The learned depth of the lift (``retarget.learned_depth``) without Blender: given each limb's
depth angle, the lift turns the arms and legs to it, and every joint keeps the video's image
direction."""
import numpy as np
import pytest

from posebridge.retarget import learned_depth
from posebridge.retarget.learned_depth import LearnedDepth
from posebridge.retarget.lift import LiftOptions, lift
from posebridge.retarget.lift_plan import plan_lift
from test_lift import (  # noqa: E402  (same folder: pytest's rootdir-less import)
    CAMERA, EXACT, IDX, OPENPOSE_FULL, animate, direction_errors, evaluate, keypoints_of, lifted_keypoints,
    look_at_camera, make_rig, make_rigmap, rot,
)

LIMBS = {"upper_arm": ("shoulder", "elbow"), "forearm": ("elbow", "wrist"),
         "thigh": ("hip", "knee"), "shin": ("knee", "ankle")}


@pytest.fixture(scope="module")
def clip():
    skeleton, rigmap, camera = make_rig(), make_rigmap(), look_at_camera(**CAMERA)
    basis = animate(skeleton)
    return skeleton, rigmap, camera, basis, keypoints_of(skeleton, rigmap, basis, camera)


def limbs_in_view(skeleton, rigmap, camera, basis):
    """Per limb: (unit direction (F, 3), its angle out of the image plane (F,), + away from the
    camera: the plane square to the camera's axis, as the network reads it)."""
    points, _ = evaluate(rigmap, skeleton.names, skeleton.forward(basis), skeleton.lengths, skeleton.rest)
    axis = -rot.normalize(camera.to_camera[0][2, :3])  # away from the camera
    out = {}
    for s in "lr":
        for kind, (a, b) in LIMBS.items():
            start = points[:, IDX(f"{s}_{a}")]
            direction = rot.normalize(points[:, IDX(f"{s}_{b}")] - start)
            out[f"{s}_{kind}"] = (direction, np.arcsin(np.clip(direction @ axis, -1.0, 1.0)))
    return out


def angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0)))


def test_the_true_depth_angles_give_the_true_limbs(clip):
    """A network that reads every depth angle right: the lifted arms and legs point where the
    performer's did in 3-D (the geometric lift, on its own, gets some of them wrong), and every
    joint stays on its pixel."""
    skeleton, rigmap, camera, basis, observed = clip
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    truth = limbs_in_view(skeleton, rigmap, camera, basis)
    depth = LearnedDepth({k: angle for k, (_, angle) in truth.items()}, np.full(len(observed), 0.9))

    def worst(result):
        got = limbs_in_view(skeleton, rigmap, camera, result.full_basis(len(skeleton)))
        return max(float(angle_deg(got[k][0], truth[k][0]).max()) for k in truth)

    assert worst(lift(plan, observed, camera, EXACT)) > 20.0  # something for the network to settle
    learned = lift(plan, observed, camera, LiftOptions(depth_smoothing=0.0, learned_depth=depth))
    assert worst(learned) < 2.0  # what is left: the torso's fit
    assert direction_errors(observed, lifted_keypoints(skeleton, rigmap, camera, learned)).max() < 0.01


def test_the_image_length_moves_the_networks_angle_only_so_far(clip):
    """A network that reads every limb flat: each limb turns out of the image plane at most
    ``LENGTH_SAYS`` towards where its image length puts it, and keeps its image direction.
    (The limb turns about the line of sight through its start; its angle against the image
    plane changes by no more than that turn.)"""
    skeleton, rigmap, camera, basis, observed = clip
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    flat = {f"{s}_{kind}": np.zeros(len(observed)) for s in "lr" for kind in LIMBS}
    result = lift(plan, observed, camera, LiftOptions(depth_smoothing=0.0, learned_depth=LearnedDepth(flat, np.ones(len(observed)))))
    got = limbs_in_view(skeleton, rigmap, camera, result.full_basis(len(skeleton)))
    truth = limbs_in_view(skeleton, rigmap, camera, basis)
    steepest = max(float(np.abs(angle).max()) for _, angle in got.values())
    assert max(float(np.abs(angle).max()) for _, angle in truth.values()) > learned_depth.LENGTH_SAYS + 0.2
    assert learned_depth.LENGTH_SAYS - 0.1 < steepest <= learned_depth.LENGTH_SAYS + 1e-6
    assert direction_errors(observed, lifted_keypoints(skeleton, rigmap, camera, result)).max() < 0.01


def test_fused_angle_moves_towards_the_nearer_reading():
    say = learned_depth.LENGTH_SAYS
    network = np.radians([10.0, -10.0, 0.0, 50.0])
    towards = np.radians([-20.0, -12.0, -40.0, -50.0])
    away = np.radians([15.0, 20.0, 40.0, 51.0])
    fused = learned_depth.fused_angle(network, towards, away)
    np.testing.assert_allclose(fused[:2], np.radians([15.0, -12.0]))  # within reach: the reading
    np.testing.assert_allclose(fused[2], -say)  # both too far: moved by LENGTH_SAYS (ties go towards)
    np.testing.assert_allclose(fused[3], np.radians(51.0))


def test_the_performer_length_comes_from_limbs_near_the_image_plane():
    angles = np.radians(np.r_[np.full(20, 5.0), np.full(20, 60.0)])
    reach = np.r_[np.full(20, 1.2), np.full(20, 3.0)]  # steep frames: a wrong angle costs much
    assert learned_depth.length_scale(reach, angles) == pytest.approx(1.2)
    assert learned_depth.length_scale(reach[20:], angles[20:]) is None


def test_confidence_note_names_the_unsure_frames():
    confidence = np.array([0.9, 0.6, 0.65, 0.9, 0.5, 0.9])
    note = learned_depth.confidence_note(confidence, np.arange(10, 16))
    assert note == "learned depth: 3 frames below 0.7 confidence: 11-12, 14"
    assert "every frame" in learned_depth.confidence_note(np.full(4, 0.9), np.arange(4))


def test_pinhole_reads_blenders_window_matrix():
    camera = look_at_camera(eye=(0, -4, 1), target=(0, 0, 1), lens=50.0, size=(640, 480))
    focal, centre = learned_depth.pinhole(camera.projection[0], 640, 480)
    assert focal == pytest.approx(50.0 / 36.0 * 640)
    assert centre == pytest.approx((319.5, 239.5))
    # A point on the camera's axis projects onto the principal point.
    assert camera.project(np.array([[[0.0, 0.0, 1.0]]]))[0, 0] == pytest.approx(centre)


def _in_camera(skeleton, rigmap, camera, basis):
    """The rig's keypoints (F, points, 3) in the camera frame the network uses (y down, z away)."""
    points, _ = evaluate(rigmap, skeleton.names, skeleton.forward(basis), skeleton.lengths, skeleton.rest)
    to_camera = camera.to_camera[0]
    return (points @ to_camera[:3, :3].T + to_camera[:3, 3]) * np.array([1.0, -1.0, -1.0])


def _torso_up(points):
    shoulders = points[:, [IDX("l_shoulder"), IDX("r_shoulder")]].mean(1)
    hips = points[:, [IDX("l_hip"), IDX("r_hip")]].mean(1)
    return rot.normalize(shoulders - hips)


def test_the_torso_follows_the_networks_lean_within_reach(clip):
    """The network's shoulders and hips turn the torso: read right, the lifted torso leans as
    the performer's did; read 30 degrees off, the rays pull it back only ``TORSO_SAYS``."""
    from posebridge.pose.layouts import COCO18

    skeleton, rigmap, camera, basis, observed = clip
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    truth = _in_camera(skeleton, rigmap, camera, basis)
    joints = truth[:, [IDX(n) for n in COCO18.points]]
    flat = {f"{s}_{kind}": np.zeros(len(observed)) for s in "lr" for kind in LIMBS}

    def lean_error(network_joints):
        depth = LearnedDepth(flat, np.ones(len(observed)), network_joints)
        result = lift(plan, observed, camera, LiftOptions(depth_smoothing=0.0, learned_depth=depth))
        got = _torso_up(_in_camera(skeleton, rigmap, camera, result.full_basis(len(skeleton))))
        return np.degrees(np.arccos(np.clip(np.sum(got * _torso_up(truth), -1), -1.0, 1.0)))

    assert lean_error(joints).max() < 1.0
    tilt = np.radians(30.0)  # about the camera's x axis: leaning towards the camera
    turn = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tilt), -np.sin(tilt)], [0.0, np.sin(tilt), np.cos(tilt)]])
    centre = joints[:, [2, 5, 8, 11]].mean(1, keepdims=True)
    off = lean_error((joints - centre) @ turn.T + centre)
    say = np.degrees(learned_depth.TORSO_SAYS)
    assert np.all(off > 30.0 - say - 1.0) and np.all(off < 30.0 + 1.0)


def test_within_reach_moves_a_rotation_only_as_far_as_it_must():
    def about_z(degrees):
        a = np.radians(degrees)
        return np.array([[[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]]])

    learned = about_z(0.0)
    np.testing.assert_allclose(learned_depth.within_reach(about_z(5.0), learned, np.radians(10.0)), about_z(5.0), atol=1e-12)
    np.testing.assert_allclose(learned_depth.within_reach(about_z(40.0), learned, np.radians(10.0)), about_z(10.0), atol=1e-12)
    np.testing.assert_allclose(learned_depth.within_reach(about_z(-40.0), learned, np.radians(10.0)), about_z(-10.0), atol=1e-12)


def test_the_scene_cameras_tilt_reaches_the_network_as_the_up_direction():
    """World up (Z) in the network's camera frame (x right, y down, z away): straight up the
    image for a level camera; leaning towards the viewer by the pitch for one looking down (the
    head nearer the camera than the feet)."""
    level = look_at_camera(eye=(0, -4, 1), target=(0, 0, 1), lens=50.0, size=(640, 480))
    assert learned_depth.camera_up(level.to_camera, (0, 0, 1))[0] == pytest.approx((0.0, -1.0, 0.0), abs=1e-9)
    down = look_at_camera(eye=(0, -4, 1 + 4 * np.tan(np.radians(30.0))), target=(0, 0, 1), lens=50.0, size=(640, 480))
    up = learned_depth.camera_up(down.to_camera, (0, 0, 1))
    assert up[0] == pytest.approx((0.0, -np.cos(np.radians(30.0)), -0.5), abs=1e-9)
    assert learned_depth.tilt_note(up).startswith("camera tilt from the scene camera: 30 deg down")
    assert learned_depth.tilt_note(None) == "camera tilt read from the image"

"""The 2-D -> 3-D lift without Blender: a synthetic humanoid posed by known rotations, seen
through a synthetic Blender-style camera, lifted back from its keypoints.

Checks: the same-rig round trip lands every joint on its pixel; another proportion keeps the
image directions and the rig's bone lengths; towards/away is settled by continuity and joint
limits; gaps and rays that miss are handled; the rotation helpers agree with their definitions.
"""
import math

import numpy as np
import pytest

from posebridge.pose.layouts import OPENPOSE_FULL
from posebridge.pose.rigmap import custom_map, evaluate
from posebridge.retarget import rotations as rot
from posebridge.retarget.lift import LiftOptions, lift
from posebridge.retarget.lift_plan import LiftError, plan_lift
from posebridge.retarget.rays import ArmatureCamera, ray_sphere
from posebridge.retarget.skeleton import RigSkeleton
from posebridge.retarget.temporal import choose_path, smooth

IDX = OPENPOSE_FULL.index
LIMB_JOINTS = [IDX(f"{s}_{j}") for s in "lr" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
LIMB_PAIRS = [(IDX(f"{s}_{a}"), IDX(f"{s}_{b}")) for s in "lr"
              for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))]
FINGERS = ("thumb", "index", "middle", "ring", "pinky")


# --- a synthetic humanoid (Blender's frame: facing -Y, up +Z, the character's left +X) -------
def _humanoid(arm=1.0, leg=1.0):
    """bone -> (parent, head, tail); ``arm``/``leg`` scale those chains' lengths."""
    bones = {
        "hips": (None, (0, 0.0, 1.0), (0, 0.0, 1.1)),
        "spine": ("hips", (0, 0.0, 1.1), (0, 0.0, 1.3)),
        "chest": ("spine", (0, 0.0, 1.3), (0, 0.0, 1.5)),
        "neck": ("chest", (0, 0.0, 1.5), (0, 0.0, 1.6)),
        "head": ("neck", (0, 0.0, 1.6), (0, 0.0, 1.8)),
    }
    for side, s in (("L", 1.0), ("R", -1.0)):
        def chain(names, points, parent, scale):
            start = np.array(points[0], float)
            out = [start]
            for a, b in zip(points[:-1], points[1:]):
                out.append(out[-1] + scale * (np.array(b, float) - np.array(a, float)))
            for i, name in enumerate(names):
                bones[f"{name}.{side}"] = (parent, tuple(out[i] * (s, 1, 1)), tuple(out[i + 1] * (s, 1, 1)))
                parent = f"{name}.{side}"
            return out

        bones[f"shoulder.{side}"] = ("chest", (s * 0.03, 0.0, 1.46), (s * 0.17, 0.0, 1.46))
        arm_points = chain(["upper_arm", "forearm", "hand"],
                           [(0.18, 0.0, 1.45), (0.40, 0.03, 1.25), (0.58, -0.02, 1.08), (0.66, -0.03, 1.02)],
                           f"shoulder.{side}", arm)
        chain(["thigh", "shin", "foot", "toe"],
              [(0.09, 0.0, 1.0), (0.09, -0.01, 0.55), (0.09, 0.01, 0.10), (0.09, -0.10, 0.02), (0.09, -0.16, 0.02)],
              "hips", leg)
        wrist, knuckle = arm_points[2], arm_points[3]
        along = (knuckle - wrist) / np.linalg.norm(knuckle - wrist)
        lateral = np.array([0.0, 1.0, 0.0])  # index at the front (-Y), pinky at the back
        for f, finger in enumerate(FINGERS):
            if finger == "thumb":
                base = wrist + along * 0.025 - lateral * 0.03
                step = (along + np.array([0.0, -0.8, -0.3])) / np.linalg.norm(along + np.array([0.0, -0.8, -0.3]))
            else:
                base = wrist + along * 0.09 + lateral * (-0.03 + 0.02 * (f - 1))
                step = along
            parent = f"hand.{side}"
            curl = np.array([0.0, 0.0, -0.15])
            joints = [base]
            for n, length in enumerate((0.04, 0.025, 0.02)):
                d = step + curl * (n + 1)
                joints.append(joints[-1] + arm * length * d / np.linalg.norm(d))
            for n in range(3):
                name = f"{finger}.0{n + 1}.{side}"
                bones[name] = (parent, tuple(joints[n] * (s, 1, 1)), tuple(joints[n + 1] * (s, 1, 1)))
                parent = name
    return bones


def _rest_matrix(head, tail):
    """A bone frame with Y from head to tail (roll as Blender's vec_roll_to_mat3 at roll 0)."""
    direction = rot.normalize(np.subtract(tail, head))
    m = np.eye(4)
    m[:3, :3] = rot.swing(np.array([0.0, 1.0, 0.0]), direction)
    m[:3, 3] = head
    return m


def make_rig(arm=1.0, leg=1.0):
    bones = _humanoid(arm, leg)
    names = list(bones)
    rest = np.stack([_rest_matrix(h, t) for _, h, t in bones.values()])
    lengths = np.array([np.linalg.norm(np.subtract(t, h)) for _, h, t in bones.values()])
    skeleton = RigSkeleton.from_parent_names(names, [p for p, _, _ in bones.values()], rest, lengths)
    return skeleton


def make_rigmap():
    spec = {}
    for p, s in (("l", "L"), ("r", "R")):
        sign = 1.0 if p == "l" else -1.0
        for point, bone in (("shoulder", "upper_arm"), ("elbow", "forearm"), ("wrist", "hand"),
                            ("hip", "thigh"), ("knee", "shin"), ("ankle", "foot")):
            spec[f"{p}_{point}"] = (f"{bone}.{s}", "head")
        spec[f"{p}_hand_wrist"] = (f"hand.{s}", "head")
        for finger in FINGERS:
            for n in (1, 2, 3):
                spec[f"{p}_hand_{finger}_{n}"] = (f"{finger}.0{n}.{s}", "head")
            spec[f"{p}_hand_{finger}_4"] = (f"{finger}.03.{s}", "tail")
        # Head bone frame: X left, Y up, Z forward (see _rest_matrix); lengths in bone lengths.
        spec[f"{p}_eye"] = [("head", (sign * 0.16, 0.55, 0.4), 1.0)]
        spec[f"{p}_ear"] = [("head", (sign * 0.4, 0.45, -0.05), 1.0)]
    spec["nose"] = [("head", (0.0, 0.45, 0.5), 1.0)]
    spec["neck"] = [("upper_arm.L", (0, 0, 0), 0.5), ("upper_arm.R", (0, 0, 0), 0.5)]
    return custom_map(spec, name="synthetic")


def look_at_camera(eye, target, lens=35.0, sensor=36.0, size=(512, 512), near=0.1, far=100.0):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    back = rot.normalize(eye - target)  # camera +Z
    right = rot.normalize(np.cross([0.0, 0.0, 1.0], back))
    up = np.cross(back, right)
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = np.column_stack([right, up, back])
    camera_to_world[:3, 3] = eye
    width, height = size
    half_w = near * sensor / 2.0 / lens
    half_h = half_w * height / width
    projection = np.array([
        [near / half_w, 0, 0, 0],
        [0, near / half_h, 0, 0],
        [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, -1, 0],
    ])
    return ArmatureCamera(np.linalg.inv(camera_to_world), projection, width, height)


# --- motion ---------------------------------------------------------------------------------
def _axis_rotation(axis, degrees):
    axis = rot.normalize(np.asarray(axis, float))
    angle = np.radians(degrees)
    q = np.concatenate([np.cos(angle / 2)[..., None], np.sin(angle / 2)[..., None] * axis], -1)
    return rot.quat_to_matrix(q)


def animate(skeleton, frames=60, root_motion=True):
    """Basis matrices (F, B, 4, 4): walk-like swings, a turning head, curling fingers, and a
    pelvis that turns and travels."""
    t = np.arange(frames) / 24.0
    basis = np.broadcast_to(np.eye(4), (frames, len(skeleton), 4, 4)).copy()

    def turn(bone, axis_world, degrees):
        b = skeleton.index(bone)
        local_axis = skeleton.rest[b, :3, :3].T @ np.asarray(axis_world, float)
        basis[:, b, :3, :3] = basis[:, b, :3, :3] @ _axis_rotation(local_axis, degrees)

    wave = np.sin(2 * np.pi * t)
    for s, sign in (("L", 1.0), ("R", -1.0)):
        turn(f"thigh.{s}", (1, 0, 0), -10 + 22 * sign * wave)  # forwards to 32, back to 12 degrees
        # Knees bend the foot backwards (+Y), elbows the hand forwards (-Y), as people do.
        turn(f"shin.{s}", (1, 0, 0), 35 * np.maximum(0, sign * np.sin(2 * np.pi * t + 1)) + 5)
        turn(f"upper_arm.{s}", (1, 0, 0), -35 * sign * wave)
        turn(f"upper_arm.{s}", (0, 1, 0), sign * (20 + 25 * np.sin(2 * np.pi * 0.7 * t)))
        turn(f"forearm.{s}", (0, 0, 1), -sign * (40 + 30 * np.sin(2 * np.pi * 0.9 * t + 0.5)))
        turn(f"hand.{s}", (1, 0, 0), 25 * np.sin(2 * np.pi * 1.3 * t))
        for finger in FINGERS:
            for n in (1, 2, 3):
                bone = f"{finger}.0{n}.{s}"
                b = skeleton.index(bone)
                # Curl about the bone's own local X (towards the palm for this rig).
                basis[:, b, :3, :3] = _axis_rotation((1, 0, 0), 20 + 25 * np.sin(2 * np.pi * 0.8 * t + n))
    turn("head", (0, 0, 1), 30 * np.sin(2 * np.pi * 0.5 * t))
    turn("head", (1, 0, 0), 10 * np.sin(2 * np.pi * 0.3 * t))
    if root_motion:
        turn("hips", (0, 0, 1), 35 * np.sin(2 * np.pi * 0.25 * t))
        hips = skeleton.index("hips")
        basis[:, hips, :3, 3] = np.stack([0.3 * np.sin(t), 0.02 * wave, 0.4 * t], -1)
    return basis


def keypoints_of(skeleton, rigmap, basis, camera):
    pose = skeleton.forward(basis)
    points, present = evaluate(rigmap, skeleton.names, pose, skeleton.lengths, skeleton.rest)
    xy = camera.project(points)
    data = np.zeros(points.shape[:2] + (3,))
    data[..., :2] = xy
    data[..., 2] = present
    return data


def limb_errors(a, b):
    return np.linalg.norm(a[:, LIMB_JOINTS, :2] - b[:, LIMB_JOINTS, :2], axis=-1)


def direction_errors(a, b):
    out = []
    for i, j in LIMB_PAIRS:
        va, vb = a[:, j, :2] - a[:, i, :2], b[:, j, :2] - b[:, i, :2]
        cos = np.sum(va * vb, -1) / (np.linalg.norm(va, axis=-1) * np.linalg.norm(vb, axis=-1))
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, -1)


CAMERA = dict(eye=(1.4, -3.6, 1.3), target=(0.0, 0.0, 1.0))
# Without the smoothing of poorly seen depth the lift is exact on exact keypoints.
EXACT = LiftOptions(depth_smoothing=0.0)


@pytest.fixture(scope="module")
def scene():
    skeleton = make_rig()
    rigmap = make_rigmap()
    camera = look_at_camera(**CAMERA)
    basis = animate(skeleton)
    return skeleton, rigmap, camera, basis, keypoints_of(skeleton, rigmap, basis, camera)


def lifted_keypoints(skeleton, rigmap, camera, result):
    return keypoints_of(skeleton, rigmap, result.full_basis(len(skeleton)), camera)


# --- round trips ------------------------------------------------------------------------------
def test_same_rig_round_trip_lands_every_joint_on_its_pixel(scene):
    skeleton, rigmap, camera, _, observed = scene
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    result = lift(plan, observed, camera, EXACT)
    again = lifted_keypoints(skeleton, rigmap, camera, result)
    assert limb_errors(observed, again).mean() < 0.05
    assert limb_errors(observed, again).max() < 0.5
    hands = [IDX(f"{s}_hand_{f}_{n}") for s in "lr" for f in FINGERS for n in (1, 2, 3, 4)]
    # Sub-pixel, not exact: where an arm is read on its other (equally valid) branch the hand
    # sits at another depth, where a rigid hand cannot match perspective exactly.
    assert np.linalg.norm(observed[:, hands, :2] - again[:, hands, :2], axis=-1).mean() < 0.5
    face = [IDX(n) for n in ("nose", "l_eye", "r_eye", "l_ear", "r_ear")]
    assert np.linalg.norm(observed[:, face, :2] - again[:, face, :2], axis=-1).mean() < 0.1
    # The bones it wrote: the hips (moved and turned), limbs, hands, fingers, head; no scale.
    names = {skeleton.names[b] for b in result.bones}
    assert {"hips", "upper_arm.L", "forearm.R", "thigh.L", "shin.R", "hand.L", "index.02.R", "head"} <= names
    assert "spine" not in names and "foot.L" not in names
    scales = np.linalg.norm(result.basis[..., :3, :3], axis=-2)
    np.testing.assert_allclose(scales, 1.0, atol=1e-9)


def test_default_smoothing_keeps_the_round_trip_within_a_pixel(scene):
    """Smoothing the poorly seen depth moves joints in the image only where that barely shows."""
    skeleton, rigmap, camera, _, observed = scene
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), observed, camera)
    errors = limb_errors(observed, lifted_keypoints(skeleton, rigmap, camera, result))
    assert errors.mean() < 0.2 and errors.max() < 2.0
    assert direction_errors(observed, lifted_keypoints(skeleton, rigmap, camera, result)).max() < 1e-3


def test_smoothing_calms_the_depth_that_pixel_noise_shakes(scene):
    """A pixel of detector noise swings a flat torso's turn in depth and the distance from its
    size; the smoothing keeps those near the truth while the image directions stay the video's."""
    skeleton, rigmap, camera, basis, observed = scene
    noisy = observed.copy()
    noisy[..., :2] += np.random.default_rng(3).normal(0.0, 1.0, noisy[..., :2].shape)
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    hips = skeleton.index("hips")
    truth = skeleton.forward(basis)[:, hips]

    def shake(options):
        result = lift(plan, noisy, camera, options)
        pose = skeleton.forward(result.full_basis(len(skeleton)))
        turn = np.einsum("fij,fij->f", pose[1:, hips, :3, :3], pose[:-1, hips, :3, :3])
        step = np.degrees(np.arccos(np.clip((turn - 1) / 2, -1, 1))).max()
        gap = np.linalg.norm(pose[:, hips, :3, 3] - truth[:, :3, 3], axis=-1).mean()
        again = keypoints_of(skeleton, rigmap, result.full_basis(len(skeleton)), camera)
        return step, gap, direction_errors(noisy, again).max()

    raw_step, raw_gap, raw_dir = shake(EXACT)
    step, gap, directions = shake(LiftOptions())
    assert step < raw_step / 2 and gap < raw_gap / 1.5
    assert directions < 1e-3 and raw_dir < 1e-3


def test_the_torso_is_placed_at_its_true_distance(scene):
    skeleton, rigmap, camera, basis, observed = scene
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), observed, camera, EXACT)
    hips = skeleton.index("hips")
    truth = skeleton.forward(basis)[:, hips, :3, 3]
    solved = skeleton.forward(result.full_basis(len(skeleton)))[:, hips, :3, 3]
    assert np.abs(solved - truth).max() < 1e-3


def test_another_proportion_keeps_directions_and_bone_lengths(scene):
    _, rigmap, camera, _, observed = scene
    target = make_rig(arm=0.8, leg=1.25)
    result = lift(plan_lift(target, rigmap, OPENPOSE_FULL), observed, camera)
    full = result.full_basis(len(target))
    again = keypoints_of(target, rigmap, full, camera)
    errors = direction_errors(observed, again)
    assert errors.mean() < 0.5 and errors.max() < 3.0
    # Never scaled: every posed bone keeps its rest length.
    pose = target.forward(full)
    np.testing.assert_allclose(np.linalg.norm(pose[..., :3, :3], axis=-2), 1.0, atol=1e-9)
    # The performer's arms look longer than the rig's 0.8: their depth is read against that.
    assert result.stats.length_scale["upper_arm"] == pytest.approx(1.25, rel=0.08)
    assert result.stats.length_scale["thigh"] == 1.0


def test_depth_held_fixed_keeps_the_distance_and_the_directions(scene):
    skeleton, rigmap, camera, _, observed = scene
    options = LiftOptions(depth_mode="fixed", fixed_depth=6.0)
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), observed, camera, options)
    np.testing.assert_allclose(result.stats.torso_distance, 6.0, atol=1e-6)
    again = lifted_keypoints(skeleton, rigmap, camera, result)
    assert direction_errors(observed, again).mean() < 0.5


def test_feet_on_the_ground(scene):
    skeleton, rigmap, camera, _, observed = scene
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    result = lift(plan, observed, camera, LiftOptions(ground=True))
    pose = skeleton.forward(result.full_basis(len(skeleton)))
    feet = plan.foot_bones
    feet_pose = pose[:, feet]
    tails = feet_pose[..., :3, 3] + feet_pose[..., :3, 1] * skeleton.lengths[feet][:, None]
    lowest = np.minimum(feet_pose[..., 2, 3], tails[..., 2]).min(axis=1)
    ground = min(skeleton.heads()[feet, 2].min(), skeleton.tails()[feet, 2].min())
    np.testing.assert_allclose(lowest, ground, atol=1e-9)


def test_gaps_are_filled_and_reported(scene):
    skeleton, rigmap, camera, _, observed = scene
    holey = observed.copy()
    holey[10:14, IDX("l_wrist")] = 0.0
    holey[30, IDX("r_knee")] = 0.0
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), holey, camera, EXACT)
    again = lifted_keypoints(skeleton, rigmap, camera, result)
    keep = np.ones(len(observed), bool)
    keep[[10, 11, 12, 13, 30]] = False
    assert limb_errors(observed[keep], again[keep]).max() < 0.5
    assert result.stats.filled >= 5
    # An interpolated wrist stays near the true one (the motion is smooth).
    assert np.linalg.norm(again[10:14, IDX("l_wrist"), :2] - observed[10:14, IDX("l_wrist"), :2], axis=-1).max() < 12


def test_body_only_keypoints_leave_hands_and_head_at_rest(scene):
    skeleton, rigmap, camera, _, observed = scene
    body = observed.copy()
    body[:, 18:] = 0.0  # hands and face absent
    body[:, [IDX(n) for n in ("nose", "l_eye", "r_eye", "l_ear", "r_ear")]] = 0.0
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), body, camera, EXACT)
    names = {skeleton.names[b] for b in result.bones}
    assert "hand.L" not in names and "head" not in names and "index.01.L" not in names
    again = lifted_keypoints(skeleton, rigmap, camera, result)
    assert limb_errors(observed, again).max() < 0.5


def test_a_hand_mapped_by_one_finger_still_points_at_it(scene):
    skeleton, rigmap, camera, _, observed = scene
    points = {k: v for k, v in rigmap.points.items()
              if not (k.startswith(("l_hand_", "r_hand_")) and not k.endswith(("middle_1", "wrist")))}
    sparse = type(rigmap)("sparse", points)
    plan = plan_lift(skeleton, sparse, OPENPOSE_FULL)
    assert not plan.hands and {skeleton.names[s.driver] for s in plan.finger_levels[0]} == {"hand.L", "hand.R"}
    result = lift(plan, observed, camera, EXACT)
    again = keypoints_of(skeleton, sparse, result.full_basis(len(skeleton)), camera)
    middle = [IDX("l_hand_middle_1"), IDX("r_hand_middle_1")]
    assert np.linalg.norm(again[:, middle, :2] - observed[:, middle, :2], axis=-1).max() < 0.5


def test_no_torso_is_a_clear_error(scene):
    skeleton, rigmap, camera, _, observed = scene
    blind = observed.copy()
    blind[:, [IDX("l_shoulder"), IDX("r_shoulder"), IDX("l_hip")]] = 0.0
    with pytest.raises(LiftError, match="shoulders and hips"):
        lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), blind, camera)
    no_hips = custom_map({"l_shoulder": ("upper_arm.L", "head")})
    with pytest.raises(LiftError, match="places no"):
        plan_lift(skeleton, no_hips, OPENPOSE_FULL)


# --- towards or away from the camera ------------------------------------------------------------
def test_legs_are_recovered_in_3d_from_the_side(scene):
    """The true 3-D joints, not just the pixels: from the side, which way each leg leans across
    the line of sight is ambiguous in the image; the knee's bend and the legs' range settle it."""
    skeleton, rigmap, _, basis, _ = scene
    camera = look_at_camera(eye=(4.0, -0.5, 1.0), target=(0.0, 0.0, 1.0))
    observed = keypoints_of(skeleton, rigmap, basis, camera)
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), observed, camera, EXACT)
    truth = skeleton.forward(basis)
    solved = skeleton.forward(result.full_basis(len(skeleton)))
    for bone in ("shin.L", "shin.R", "foot.L", "foot.R"):
        b = skeleton.index(bone)
        gap = np.linalg.norm(truth[:, b, :3, 3] - solved[:, b, :3, 3], axis=-1)
        assert gap.max() < 0.01, bone


def test_knees_never_bend_backwards(scene):
    """From the front a leg swinging forwards looks like one swinging back; whichever reading
    the lift takes, its knees bend the way knees bend."""
    skeleton, rigmap, camera, basis, observed = scene
    result = lift(plan_lift(skeleton, rigmap, OPENPOSE_FULL), observed, camera)
    pose = skeleton.forward(result.full_basis(len(skeleton)))
    hips = skeleton.index("hips")
    left = pose[:, hips, :3, :3] @ skeleton.rest[hips, :3, :3].T @ np.array([1.0, 0.0, 0.0])
    for side in "LR":
        hip, knee, ankle = (pose[:, skeleton.index(f"{b}.{side}"), :3, 3] for b in ("thigh", "shin", "foot"))
        bend = np.einsum("fi,fi->f", np.cross(rot.normalize(knee - hip), rot.normalize(ankle - knee)), left)
        assert bend.min() > -0.02, side


def test_elbows_and_knees_bend_on_their_hinge(scene):
    """The upper limb turns about its own axis so the lower limb bends across the rig's bend
    axis, not sideways to it (what a skinned elbow or knee needs)."""
    skeleton, rigmap, camera, _, observed = scene
    plan = plan_lift(skeleton, rigmap, OPENPOSE_FULL)
    pose = skeleton.forward(lift(plan, observed, camera).full_basis(len(skeleton)))
    checked = 0
    for seg in plan.limb_levels[1]:
        parent = seg.parent_segment
        rotation = pose[:, parent.driver, :3, :3]
        upper = rotation @ parent.rest_direction
        lower = pose[:, seg.driver, :3, :3] @ seg.rest_direction
        normal = np.cross(upper, lower)
        bent = np.linalg.norm(normal, axis=-1) > 0.35  # more than about 20 degrees
        hinge = rotation @ seg.hinge
        across = np.einsum("fi,fi->f", rot.normalize(normal), hinge)
        assert np.all(across[bent] > 0.98), f"{seg.side}_{seg.kind}"
        checked += bent.sum()
    assert checked > 50


def test_choose_path_prefers_continuity_over_a_cheaper_frame():
    unary = np.array([[0.0, 1.0], [0.3, 0.0], [0.0, 1.0]])
    step = np.zeros((2, 2, 2))
    step[:, 0, 1] = step[:, 1, 0] = 1.0  # switching costs 1
    assert choose_path(unary, step).tolist() == [0, 0, 0]
    unary[1] = [3.0, 0.0]
    assert choose_path(unary, step).tolist() == [0, 1, 0]


def test_ray_sphere_hits_and_misses():
    centre = np.array([[0.0, 0.0, -5.0], [0.0, 0.0, -5.0]])
    origin = np.zeros((2, 3))
    direction = rot.normalize(np.array([[0.0, 0.0, -1.0], [2.0, 0.0, -5.0]]))
    near, far, hit = ray_sphere(centre, 1.0, origin, direction)
    assert hit.tolist() == [True, False]
    np.testing.assert_allclose(near[0], [0, 0, -4]) and np.testing.assert_allclose(far[0], [0, 0, -6])
    # A miss: the sphere point nearest the ray, at exactly the radius, towards the ray.
    assert np.linalg.norm(near[1] - centre[1]) == pytest.approx(1.0)
    assert near[1][0] > 0.9


# --- rotations ------------------------------------------------------------------------------
def test_quaternion_matrix_round_trip_and_swing():
    rng = np.random.default_rng(1)
    q = rot.normalize(rng.normal(size=(200, 4)))
    q[:3] = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # half turns
    m = rot.quat_to_matrix(q)
    back = rot.matrix_to_quat(m)
    np.testing.assert_allclose(rot.quat_to_matrix(back), m, atol=1e-12)
    a, b = rot.normalize(rng.normal(size=(200, 3))), rot.normalize(rng.normal(size=(200, 3)))
    b[0] = -a[0]
    r = rot.swing(a, b)
    np.testing.assert_allclose(np.einsum("fij,fj->fi", r, a), b, atol=1e-9)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    # No twist: the axis is perpendicular to both directions.
    axis = rot.matrix_to_quat(r[1:])[:, 1:]
    np.testing.assert_allclose(np.sum(axis * a[1:], -1), 0.0, atol=1e-9)


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_orders_recompose(order):
    rng = np.random.default_rng(2)
    m = rot.quat_to_matrix(rot.normalize(rng.normal(size=(300, 4))))
    angles = rot.matrix_to_euler(m, order)
    np.testing.assert_allclose(rot.euler_to_matrix(angles, order), m, atol=1e-9)
    # Gimbal lock still recomposes.
    locked = rot.euler_to_matrix(np.array([[0.3, math.pi / 2, -0.2], [0.1, -math.pi / 2, 0.4]])[:, [0, 1, 2]], order)
    np.testing.assert_allclose(rot.euler_to_matrix(rot.matrix_to_euler(locked, order), order), locked, atol=1e-7)


def test_smoothing_keeps_steady_motion_and_removes_noise():
    frames = np.arange(40, dtype=float)
    line = np.stack([3.0 * frames + 1.0, -frames], -1)
    np.testing.assert_allclose(smooth(line, 2.0), line, atol=1e-9)  # ends included
    noisy = line + np.random.default_rng(0).normal(0, 1.0, line.shape)
    assert np.abs(smooth(noisy, 2.0) - line).mean() < 0.5 * np.abs(noisy - line).mean()
    np.testing.assert_array_equal(smooth(line[:2], 2.0), line[:2])


def test_axis_angle_is_blenders_layout():
    angle, axis = 0.7, rot.normalize(np.array([1.0, -2.0, 0.5]))
    q = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])
    np.testing.assert_allclose(rot.quat_to_axis_angle(q), np.concatenate([[angle], axis]), atol=1e-12)
    np.testing.assert_allclose(rot.quat_to_axis_angle(np.array([1.0, 0, 0, 0])), [0, 0, 1, 0])


def test_continuous_quaternions_never_jump_hemispheres():
    q = rot.normalize(np.array([[1.0, 0.1, 0, 0], [-1.0, -0.12, 0, 0], [1.0, 0.14, 0, 0]]))
    out = rot.continuous_quats(q)
    assert (np.sum(out[1:] * out[:-1], -1) > 0).all()

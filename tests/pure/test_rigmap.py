"""Rig maps without Blender: presets as data, detection from bone names, the evaluation formula
on hand-made matrices, absent points, custom maps and their plain-data round trip."""
import json
import math

import numpy as np
import pytest

from posebridge.pose import face_template, rigmap_presets
from posebridge.pose.layouts import COCO18, OPENPOSE_FULL
from posebridge.pose.rigmap import (
    RigMap,
    Term,
    bake,
    bind,
    custom_map,
    detect_preset,
    evaluate,
    head,
    midpoint,
    rest_keypoints,
    tail,
)

IDX = OPENPOSE_FULL.index


# --- bone-name lists as Blender gives them (checked with bpy 4.2 and 5.0) ----------------------
RIGIFY_BODY = [
    "spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.005", "spine.006",
    "shoulder.L", "upper_arm.L", "forearm.L", "hand.L", "shoulder.R", "upper_arm.R", "forearm.R",
    "hand.R", "thigh.L", "shin.L", "foot.L", "toe.L", "thigh.R", "shin.R", "foot.R", "toe.R",
]
RIGIFY_FACE = [
    "face", "nose", "nose.001", "nose.002", "nose.003", "nose.004", "eye.L", "eye.R", "jaw", "chin",
    "jaw.L", "jaw.L.001", "jaw.R", "jaw.R.001",
] + [f"{b}.{s}{n}" for s in "LR" for b in ("lid.T", "lid.B", "brow.T") for n in ("", ".001", ".002", ".003")] + [
    f"lip.{ud}.{s}{n}" for ud in "TB" for s in "LR" for n in ("", ".001")
] + [f"ear.{s}{n}" for s in "LR" for n in ("", ".001", ".002", ".003", ".004")] + [
    "nose.L", "nose.L.001", "nose.R", "nose.R.001",
]
RIGIFY_FINGERS = [
    f"{f}.0{n}.{s}" for s in "LR" for f in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky") for n in (1, 2, 3)
]
RIGIFY_METARIG = RIGIFY_BODY + RIGIFY_FACE + RIGIFY_FINGERS
# A generated rig: ORG- copies of every metarig bone, DEF- deform bones, controls that reuse some
# metarig names (shoulder.L, thumb.01.L, nose, jaw, eye.L ...) but not the limbs'.
RIGIFY_GENERATED = (
    ["root", "torso", "hips", "chest", "neck", "head", "shoulder.L", "shoulder.R", "nose", "jaw",
     "eye.L", "eye.R", "thumb.01.L", "upper_arm_fk.L", "upper_arm_ik.L", "hand_ik.L"]
    + ["ORG-" + b for b in RIGIFY_METARIG]
    + ["DEF-" + b for b in RIGIFY_BODY if not b.startswith("spine.00")]
)
MIXAMO = [
    "Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End", "LeftEye", "RightEye",
] + [f"{side}{b}" for side in ("Left", "Right") for b in (
    "Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase", "Toe_End",
)] + [f"{side}Hand{f}{n}" for side in ("Left", "Right") for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for n in (1, 2, 3, 4)]
CMU_BVH = [
    "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RHipJoint", "RightUpLeg",
    "RightLeg", "RightFoot", "RightToeBase", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LThumb",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase", "RightHandIndex1", "RThumb",
]


# --- presets as data ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", rigmap_presets.PRESETS, ids=lambda p: p.id)
def test_every_preset_places_the_whole_coco_body_and_only_known_points(preset):
    points = preset.points()
    assert set(points) <= set(OPENPOSE_FULL.points)
    assert set(COCO18.points) <= set(points)
    # Every face point has at least the head-bone template to fall back on.
    face = OPENPOSE_FULL.part("face")
    assert set(OPENPOSE_FULL.points[face.start:face.stop]) <= set(points)


def test_presets_follow_openpose_joint_conventions():
    rigify = rigmap_presets.PRESETS_BY_ID["rigify_metarig"].points()
    assert rigify["l_shoulder"] == (head("upper_arm.L"),)
    assert rigify["r_elbow"] == (head("forearm.R"),)
    assert rigify["l_wrist"] == rigify["l_hand_wrist"] == (head("hand.L"),)
    assert rigify["r_hip"] == (head("thigh.R"),)
    assert rigify["l_knee"] == (head("shin.L"),)
    assert rigify["l_ankle"] == (head("foot.L"),)
    assert rigify["neck"] == (midpoint(head("upper_arm.L"), head("upper_arm.R")),)
    assert rigify["l_hand_thumb_1"] == (head("thumb.01.L"),)  # CMC
    assert rigify["l_hand_index_1"] == (head("f_index.01.L"),)  # MCP
    assert rigify["l_hand_index_4"] == (tail("f_index.03.L"),)  # tip
    mixamo = rigmap_presets.PRESETS_BY_ID["mixamo"].points()
    assert mixamo["l_shoulder"] == (head("LeftArm"),)
    assert mixamo["r_knee"] == (head("RightLeg"),)
    assert mixamo["l_hand_index_4"] == (head("LeftHandIndex4"), tail("LeftHandIndex3"))
    # Eyes: the eye bone when there is one, else the template.
    assert mixamo["l_eye"][0] == head("LeftEye") and mixamo["l_eye"][1][0].bone == "Head"


def test_rigify_face_uses_face_bones_first_and_mirrors_sides():
    points = rigmap_presets.PRESETS_BY_ID["rigify_metarig"].points()
    assert points["face_36"][0][0].bone == "lid.T.R"  # person's right eye, outer corner
    assert points["face_45"][0][0].bone == "lid.T.L"  # left eye, outer corner
    assert points["face_0"][0][0].bone == "jaw.R" and points["face_16"][0][0].bone == "jaw.L"
    assert points["r_pupil"][0] == tail("eye.R")
    assert points["face_36"][-1][0].bone == "spine.006"  # template fallback
    # Mirrored rig-frame offsets flip their left component only.
    right, left = points["face_61"][0][0], points["face_63"][0][0]
    assert left.bone == "lip.T.L" and left.offset == (-right.offset[0], right.offset[1], right.offset[2])


def test_face_template_is_a_face_looking_forward():
    t = face_template.template_offsets()
    assert len(t) == 68 + 2 + 5  # landmarks, pupils, nose, eyes, ears
    left, up, forward = 0, 1, 2
    assert t["face_8"][up] < t["face_57"][up] < t["face_33"][up] < t["face_30"][up] < t["face_27"][up]
    assert t["face_30"][forward] == max(v[forward] for v in t.values())  # nose tip leads
    assert t["l_eye"][left] > 0 > t["r_eye"][left]
    assert t["face_45"][left] > t["face_42"][left] > 0  # left eye: outer corner further out
    assert t["r_ear"][forward] < 0 < t["face_0"][forward]
    for name, (x, y, z) in t.items():
        mx, my, mz = t[face_template.mirror_point_name(name)]
        assert (mx, my, mz) == pytest.approx((-x, y, z))
    # About a head: eyes 60-70 mm apart on a 184 mm bone, everything within a head's size.
    ipd = (t["l_pupil"][left] - t["r_pupil"][left]) * face_template.BONE_LENGTH_MM
    assert 55 < ipd < 70
    assert max(abs(c) for v in t.values() for c in v) < 1.0


# --- detection -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names, preset, prefix",
    [
        (RIGIFY_METARIG, "rigify_metarig", ""),
        (RIGIFY_BODY, "rigify_metarig", ""),  # the basic human metarig has no face or fingers
        (RIGIFY_GENERATED, "rigify_generated", "ORG-"),
        (["mixamorig:" + b for b in MIXAMO], "mixamo", "mixamorig:"),
        (["mixamorig1:" + b for b in MIXAMO], "mixamo", "mixamorig1:"),
        (MIXAMO, "mixamo", ""),
        ([b for b in MIXAMO if "Hand" not in b or b.endswith("Hand")], "mixamo", ""),  # no fingers
        (CMU_BVH, "cmu_bvh", ""),
    ],
)
def test_detection_picks_the_right_preset(names, preset, prefix):
    found = rigmap_presets.detect(names)
    assert found is not None and found.preset.id == preset and found.prefix == prefix
    rigmap = detect_preset(names)
    assert rigmap.name == preset
    assert rigmap.bones() & set(names)
    assert all(b.startswith(prefix) for b in rigmap.bones())
    assert set(COCO18.points) <= rigmap.placeable(names)


def test_nothing_fits_unknown_or_incomplete_rigs():
    assert detect_preset([]) is None
    assert detect_preset(["Bone", "Bone.001", "Bone.002"]) is None
    assert detect_preset([b for b in MIXAMO if b != "LeftForeArm"]) is None
    assert detect_preset([b for b in RIGIFY_METARIG if b != "shin.R"]) is None
    # Names only inside a longer word are not a prefix match of the essentials.
    assert detect_preset(["xLeftForeArm"] + MIXAMO[:5]) is None


def test_cmu_names_do_not_make_a_mixamo_rig_a_cmu_one():
    # Mixamo limb names without CMU's hip joints: Mixamo, even with few bones.
    found = rigmap_presets.detect([b for b in MIXAMO if "Hand" not in b or b.endswith("Hand")])
    assert found.preset.id == "mixamo"
    cmu = rigmap_presets.detect(CMU_BVH)
    assert cmu.preset.id == "cmu_bvh"
    placed = cmu.rigmap.placeable(CMU_BVH)
    assert "l_hand_wrist" in placed and "l_hand_index_1" not in placed  # fingers are not captured


# --- evaluation ------------------------------------------------------------------------------
def rotation_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def matrix(rotation=np.eye(3), translation=(0, 0, 0), scale=1.0):
    m = np.eye(4)
    m[:3, :3] = np.asarray(rotation) * scale
    m[:3, 3] = translation
    return m


def test_head_tail_local_points_and_weights_follow_the_formula():
    names = ["a", "b"]
    lengths = [2.0, 0.5]
    m_a = matrix(rotation_z(math.pi / 2), (1, 2, 3))  # bone Y axis now points along world -X
    m_b = matrix(np.eye(3), (10, 0, 0), scale=2.0)
    rigmap = RigMap("t", {
        "nose": (head("a"),),
        "neck": (tail("a"),),
        "r_shoulder": ((Term("b", (1.0, 0.5, -1.0)),),),
        "l_shoulder": ((Term("a", weight=1.0), Term("b", (0, 1, 0), weight=3.0)),),
    })
    points, present = evaluate(rigmap, names, np.stack([m_a, m_b])[None], lengths)
    assert points.shape == (1, len(OPENPOSE_FULL), 3) and present.shape == (1, len(OPENPOSE_FULL))
    np.testing.assert_allclose(points[0, IDX("nose")], (1, 2, 3))
    np.testing.assert_allclose(points[0, IDX("neck")], (1 - 2.0, 2, 3), atol=1e-12)
    # local (1, .5, -1) in bone lengths (0.5) -> (.5, .25, -.5), scaled 2 by the matrix.
    np.testing.assert_allclose(points[0, IDX("r_shoulder")], (11, 0.5, -1))
    # Weights normalise: 1/4 head of a + 3/4 tail of b (b's tail: (0, .5, 0) * 2 + (10, 0, 0)).
    np.testing.assert_allclose(points[0, IDX("l_shoulder")], 0.25 * np.array([1, 2, 3]) + 0.75 * np.array([10, 1, 0]))
    assert present[0].sum() == 4


def test_vectorised_evaluation_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    names = [f"b{i}" for i in range(12)]
    lengths = rng.uniform(0.1, 2.0, len(names))
    points_spec = {}
    for point in OPENPOSE_FULL.points[::3]:
        terms = tuple(
            Term(names[rng.integers(len(names))], tuple(rng.normal(size=3)), float(rng.uniform(0.2, 1)))
            for _ in range(rng.integers(1, 4))
        )
        points_spec[point] = (terms,)
    rigmap = RigMap("random", points_spec)
    frames = 7
    mats = np.tile(np.eye(4), (frames, len(names), 1, 1))
    mats[..., :3, :] = rng.normal(size=(frames, len(names), 3, 4))
    points, present = evaluate(rigmap, names, mats, lengths)
    for f in range(frames):
        for point, (recipe,) in points_spec.items():
            total = sum(t.weight for t in recipe)
            want = sum(
                t.weight / total * (mats[f, names.index(t.bone)] @ np.append(np.array(t.local) * lengths[names.index(t.bone)], 1))[:3]
                for t in recipe
            )
            np.testing.assert_allclose(points[f, IDX(point)], want, rtol=1e-10, atol=1e-10)
    assert present.sum() == frames * len(points_spec)


def test_points_without_bones_are_absent_not_at_the_origin():
    rigmap = RigMap("t", {"nose": (head("gone"),), "neck": (head("gone"), tail("here")), "l_eye": (head("here"),)})
    m = matrix(translation=(5, 5, 5))[None, None]
    points, present = evaluate(rigmap, ["here"], m, [1.0])
    assert not present[0, IDX("nose")] and not present[0, IDX("r_eye")]
    np.testing.assert_array_equal(points[0, IDX("nose")], 0.0)
    # The first recipe needs a missing bone, so the alternative is used.
    assert present[0, IDX("neck")]
    np.testing.assert_allclose(points[0, IDX("neck")], (5, 6, 5))
    assert present[0].sum() == 2


def test_a_frame_with_broken_matrices_is_absent_on_that_frame_only():
    rigmap = RigMap("t", {"nose": (head("a"),)})
    mats = np.tile(np.eye(4), (3, 1, 1, 1))
    mats[1, 0, 0, 3] = np.nan
    points, present = evaluate(rigmap, ["a"], mats, [1.0])
    assert present[:, IDX("nose")].tolist() == [True, False, True]
    assert np.isfinite(points).all()


def test_binding_lists_the_bones_it_needs():
    names = ["x", "a", "y", "b"]
    binding = bind(RigMap("t", {"nose": (head("b"),), "neck": (midpoint(head("a"), head("b")),)}), names, [1, 1, 1, 1])
    assert binding.bones_needed.tolist() == [1, 3]


# --- rig-frame offsets (face template) ---------------------------------------------------------
def _toy_rig(roll=0.0, y_up=False):
    """Rest matrices of a tiny upright rig facing -Y: shoulders, hips and a head bone pointing up.

    ``roll`` spins the head bone about its own axis (as arbitrary imports do); ``y_up`` stores the
    armature data Y-up like an FBX import (forward +Z, up +Y)."""
    names = ["upper_arm.L", "upper_arm.R", "thigh.L", "thigh.R", "forearm.L", "forearm.R", "hand.L",
             "hand.R", "shin.L", "shin.R", "foot.L", "foot.R", "spine.006"]
    heads = {"upper_arm.L": (0.2, 0, 1.4), "upper_arm.R": (-0.2, 0, 1.4), "thigh.L": (0.1, 0, 0.9),
             "thigh.R": (-0.1, 0, 0.9), "forearm.L": (0.45, 0, 1.4), "forearm.R": (-0.45, 0, 1.4),
             "hand.L": (0.7, 0, 1.4), "hand.R": (-0.7, 0, 1.4), "shin.L": (0.1, 0, 0.5),
             "shin.R": (-0.1, 0, 0.5), "foot.L": (0.1, 0, 0.1), "foot.R": (-0.1, 0, 0.1),
             "spine.006": (0, 0, 1.55)}
    # Bone pointing up (+Z), roll 0: bone X = +X, bone Y = +Z, bone Z = -Y.
    up = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    spin = np.array([[math.cos(roll), 0, math.sin(roll)], [0, 1, 0], [-math.sin(roll), 0, math.cos(roll)]])
    to_data = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]) if y_up else np.eye(3)  # (x, y, z) -> (x, z, -y)
    rest = []
    for n in names:
        m = np.eye(4)
        m[:3, :3] = to_data @ up @ spin
        m[:3, 3] = to_data @ np.array(heads[n])
        rest.append(m)
    return names, np.array(rest), np.full(len(names), 0.2)


@pytest.mark.parametrize("roll", [0.0, 0.7, -2.0])
@pytest.mark.parametrize("y_up", [False, True])
def test_template_faces_forward_whatever_the_roll_and_axes(roll, y_up):
    names, rest, lengths = _toy_rig(roll, y_up)
    rigmap = rigmap_presets.PRESETS_BY_ID["rigify_metarig"].resolve("")  # no face bones: template
    points, present = rest_keypoints(rigmap, names, rest, lengths)
    data_forward = np.array([0, 0, 1.0]) if y_up else np.array([0, -1.0, 0])
    data_left = np.array([1.0, 0, 0])
    head_at = rest[names.index("spine.006"), :3, 3]
    nose = points[IDX("nose")] - head_at
    assert present[IDX("nose")] and present[IDX("face_8")]
    assert nose @ data_forward > 0.1  # in front of the head bone (0.2 long)
    assert (points[IDX("l_eye")] - points[IDX("r_eye")]) @ data_left > 0.05
    expected = np.array(face_template.template_offsets()["nose"]) * 0.2
    axes = np.column_stack([data_left, np.cross(data_forward, data_left), data_forward])
    np.testing.assert_allclose(nose, axes @ expected, atol=1e-9)


def test_bake_gives_what_evaluate_with_rest_gives():
    names, rest, lengths = _toy_rig(1.1, True)
    rigmap = rigmap_presets.PRESETS_BY_ID["rigify_metarig"].resolve("")
    rng = np.random.default_rng(0)
    posed = np.tile(rest, (3, 1, 1, 1))
    posed[:, -1, :3, :3] = np.linalg.qr(rng.normal(size=(3, 3, 3)))[0]  # turn the head
    with_rest = evaluate(rigmap, names, posed, lengths, rest_matrices=rest)
    baked = bake(rigmap, names, lengths, rest)
    assert all(t.offset == (0.0, 0.0, 0.0) for t in baked.points["nose"][-1])
    without = evaluate(baked, names, posed, lengths)
    np.testing.assert_allclose(with_rest[0], without[0], atol=1e-12)
    np.testing.assert_array_equal(with_rest[1], without[1])


def test_turning_the_head_turns_the_face_with_it():
    names, rest, lengths = _toy_rig()
    rigmap = rigmap_presets.PRESETS_BY_ID["rigify_metarig"].resolve("")
    posed = rest.copy()
    h = names.index("spine.006")
    # Turn the head 90 degrees about world Z (look to the character's left, +X).
    posed[h, :3, :3] = rotation_z(math.pi / 2) @ rest[h, :3, :3]
    points, _ = evaluate(rigmap, names, posed[None], lengths, rest_matrices=rest)
    nose = points[0, IDX("nose")] - rest[h, :3, 3]
    assert nose[0] > 0.1 and abs(nose[1]) < 1e-9


# --- custom maps and plain data ----------------------------------------------------------------
def test_custom_map_simple_forms_and_round_trips():
    spec = {
        "l_shoulder": ("arm_L", "head"),
        "l_elbow": ("arm_L", "tail"),
        "neck": [("arm_L", (0, 0, 0), 0.5), ("arm_R", (0, 0, 0), 0.5)],
        "nose": [[("face_bone", (0, 1, 0), 1.0)], [("head_bone", (0, 0, 0), 1.0, (0, 0.4, 0.5))]],
        "r_eye": [{"bone": "head_bone", "offset": [-0.1, 0.4, 0.4]}],
    }
    rigmap = custom_map(spec, "mine")
    assert rigmap.points["l_shoulder"] == (head("arm_L"),)
    assert rigmap.points["l_elbow"] == (tail("arm_L"),)
    assert len(rigmap.points["nose"]) == 2 and rigmap.points["nose"][1][0].offset == (0, 0.4, 0.5)
    assert rigmap.points["r_eye"][0][0].weight == 1.0

    data = json.loads(json.dumps(rigmap.to_data()))
    assert RigMap.from_data(data) == rigmap
    rows = rigmap.to_rows()
    assert all(len(row) == 10 for row in rows)
    assert RigMap.from_rows(rows, "mine") == rigmap
    # Custom points override a preset's.
    preset = detect_preset(MIXAMO)
    merged = preset.overridden(custom_map({"nose": ("Head", "tail")}), "mixamo+mine")
    assert merged.points["nose"] == (tail("Head"),) and merged.points["l_knee"] == preset.points["l_knee"]


def test_every_preset_round_trips_as_plain_data():
    for preset in rigmap_presets.PRESETS:
        rigmap = preset.resolve("p:")
        assert RigMap.from_data(json.loads(json.dumps(rigmap.to_data()))) == rigmap
        assert RigMap.from_rows(rigmap.to_rows(), rigmap.name) == rigmap


@pytest.mark.parametrize("spec", [{"noze": ("a", "head")}, {"nose": ("a", "middle")}, {"nose": []}, {"nose": 3}])
def test_bad_custom_maps_are_rejected(spec):
    with pytest.raises(ValueError):
        custom_map(spec)

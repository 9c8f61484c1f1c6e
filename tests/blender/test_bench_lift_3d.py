"""bench/bench_lift_3d.py's core (issue 16's 3-D limb benchmark) on a few frames of one view:
the figures are sane on a CMU clip, the same rig's own star jumps come back close from the
front, and the comparison catches what is wrong (a depth-mirrored pose, swapped sides) and
reads the flat reading as the limbs' out-of-plane angles."""
import sys
from pathlib import Path

import numpy as np
import rigs

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_lift_3d
import lift_views

FRAMES = 24


def test_cmu_walk_from_the_front_gives_sane_figures(shared_data, tmp_path):
    scene, capture, frames = bench_lift_3d.load_clip(shared_data / "cmu" / "07_01.bvh")
    assert frames[0] == 2  # frame 1, the converter's T-pose, left out
    frames = frames[:FRAMES]
    ((camera, placement),) = bench_lift_3d.view_cameras(scene, capture, frames, ["front"]).values()
    assert placement.distance > 1.0
    figures = bench_lift_3d.measure_view(scene, capture, camera, frames, tmp_path)
    lift, flat = figures["lift"], figures["flat"]
    print(f"\nCMU 07_01, front, {FRAMES} frames: lift mean {lift['mean_deg']:.1f} p95 {lift['p95_deg']:.1f} "
          f"wrong {lift['wrong_depth']}; flat mean {flat['mean_deg']:.1f} p95 {flat['p95_deg']:.1f}; "
          f"2D {figures['image_2d_deg']:.2f} deg; {figures['seconds']}")
    assert lift["limbs"] == flat["limbs"] == FRAMES * len(lift_views.LIMBS)
    for reading in (lift, flat):
        assert 0.0 <= reading["mean_deg"] <= reading["p95_deg"] <= reading["max_deg"] <= 180.0
    assert flat["wrong_depth"] is None  # the flat reading has no towards/away sign
    assert lift["out_of_plane_limbs"] > 0 and 0.0 <= lift["wrong_depth"] <= 1.0
    assert figures["image_2d_deg"] < 2.0  # the import keeps the image directions
    assert figures["seconds"]["lift"] > 0 and figures["seconds"]["track"] > 0


# Star jumps: arms and legs swing in the body's frontal plane (about the bones' local Z on the
# metarig), so from the front no limb turns more than the rest pose's few degrees out of the
# image plane and the lift has no towards/away choice to get wrong.
STAR_JUMP = {
    "l_thigh": ("Z", 15.0, 0.0), "r_thigh": ("Z", 15.0, 0.5),
    "l_shin": ("Z", 10.0, 0.5), "r_shin": ("Z", 10.0, 0.0),
    "l_upper_arm": ("Z", 30.0, 0.0), "r_upper_arm": ("Z", 30.0, 0.5),
    "l_forearm": ("Z", 20.0, 0.0), "r_forearm": ("Z", 20.0, 0.5),
}


def test_the_same_rigs_animation_comes_back_close_from_the_front(empty_scene, tmp_path):
    """The whole chain (camera, keypoints, import, rig keypoints) lines up: a metarig's star
    jumps, imported onto another metarig from the front, come back within a few degrees in 3-D. (Its walk does not: from the front the geometric lift reads the thighs'
    swing forward throughout, about 14 degrees mean, 41% depth wrong: what issue 16 is about.)"""
    performer = rigs.animate(rigs.build_rigify_metarig("performer"), rigs.RIGIFY_ROLES, motion=STAR_JUMP,
                             seconds=1.0)
    bench_lift_3d.set_render_size(empty_scene)
    frames = list(range(1, FRAMES + 1))
    ((camera, _),) = bench_lift_3d.view_cameras(empty_scene, performer, frames, ["front"]).values()
    # The geometric lift: exact for the performer's own build, so what is left is the bench's.
    figures = bench_lift_3d.measure_view(empty_scene, performer, camera, frames, tmp_path, lift="geometric")
    lift, flat = figures["lift"], figures["flat"]
    print(f"\nsame rig, star jumps, front: lift mean {lift['mean_deg']:.2f} p95 {lift['p95_deg']:.2f} "
          f"max {lift['max_deg']:.2f} (flat mean {flat['mean_deg']:.2f}); 2D {figures['image_2d_deg']:.3f} deg")
    assert lift["limbs"] == FRAMES * len(lift_views.LIMBS)
    # Measured: mean 3.9, p95 12.8, max 16.5 (the rest pose's slight tilts in depth, read either
    # way), flat 8.3; a misaligned chain would be tens of degrees off.
    assert lift["mean_deg"] <= 6.0 and lift["p95_deg"] <= 20.0 and lift["mean_deg"] < flat["mean_deg"]
    assert figures["image_2d_deg"] < 2.0


def test_the_comparison_catches_a_wrong_pose(empty_scene):
    """Measured against itself a pose has no error; mirrored in depth, every limb out of the
    image plane has its depth wrong by twice its out-of-plane angle; left and right swapped is
    far off; the flat reading's error is the out-of-plane angle (up to perspective)."""
    from posebridge.pose.layouts import OPENPOSE_FULL

    performer = rigs.build_animated_rigify_metarig("performer", seconds=1.0)
    bench_lift_3d.set_render_size(empty_scene)
    frames = list(range(1, FRAMES + 1))
    ((camera, _),) = bench_lift_3d.view_cameras(empty_scene, performer, frames, ["three_quarter"]).values()
    (rig,), world_to_camera = bench_lift_3d.rig_points(empty_scene, [performer], camera, frames)
    truth, valid = bench_lift_3d.limb_dirs(rig, world_to_camera)
    assert valid.all()

    same = lift_views.compare(truth, truth, valid)
    assert same["max_deg"] < 1e-4 and same["wrong_depth"] == 0.0

    mirrored = truth * np.array([1.0, 1.0, -1.0])
    wrong = lift_views.compare(truth, mirrored, valid)
    deep = lift_views.out_of_plane(truth) > lift_views.OUT_OF_PLANE_DEG
    assert wrong["out_of_plane_limbs"] == int(deep.sum()) > 0 and wrong["wrong_depth"] == 1.0
    np.testing.assert_allclose(wrong["errors"], 2.0 * lift_views.out_of_plane(truth)[valid], atol=1e-6)

    half = len(lift_views.LIMBS) // 2  # left limbs first, then right
    swapped = np.concatenate([truth[:, half:], truth[:, :half]], axis=1)
    assert lift_views.compare(truth, swapped, valid)["mean_deg"] > 10.0

    image, image_ok = lift_views.image_directions(rig[2], rig[1], OPENPOSE_FULL)
    flat = lift_views.compare(truth, lift_views.flat_reading(image), valid & image_ok, signed=False)
    tilt = lift_views.out_of_plane(truth)[valid & image_ok]
    assert flat["wrong_depth"] is None
    assert np.abs(flat["errors"] - tilt).max() < 5.0 and abs(flat["mean_deg"] - tilt.mean()) < 1.0

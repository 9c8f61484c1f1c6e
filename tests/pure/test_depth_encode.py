"""Depth maps to ControlNet grey images: one range per shot, near bright, background black."""
import numpy as np
import pytest

from posebridge.draw.depth_encode import DepthRange, encode_depth, shot_depth_range
from posebridge.draw.png import read_png, write_png

INF = np.inf


def test_depth_range_is_validated():
    assert DepthRange(1, 5) == DepthRange(1.0, 5.0)
    for near, far in ((0, 1), (-1, 1), (2, 2), (3, 1), (1, INF), (np.nan, 1)):
        with pytest.raises(ValueError):
            DepthRange(near, far)


def test_shot_range_spans_every_frame_and_ignores_background():
    frames = [np.array([[2.0, INF], [3.0, 4.0]]), np.full((2, 2), INF), np.array([[7.5, 2.5]])]
    assert shot_depth_range(frames) == DepthRange(2.0, 7.5)
    # Any iterable, consumed once (a generator of frames rendered on the fly).
    assert shot_depth_range(f for f in frames) == DepthRange(2.0, 7.5)
    assert shot_depth_range(np.stack([frames[0], frames[0]])) == DepthRange(2.0, 4.0)


def test_shot_without_any_surface_is_a_clear_error():
    with pytest.raises(ValueError, match="no surface"):
        shot_depth_range([np.full((3, 3), INF), np.full((3, 3), INF)])
    with pytest.raises(ValueError, match="no surface"):
        shot_depth_range([])


def test_shot_at_a_single_distance_gets_a_usable_range():
    depth_range = shot_depth_range([np.array([[3.0, INF]])])
    assert depth_range.near == 3.0 and depth_range.far > 3.0
    assert encode_depth(np.array([[3.0, INF]]), depth_range).tolist() == [[255, 0]]


def test_linear_mode_levels():
    depth = np.array([[1.0, 3.0, 5.0, INF]])
    out = encode_depth(depth, DepthRange(1, 5), mode="linear")
    assert out.dtype == np.uint8
    # (far - z) / (far - near) scaled to 1..255: near 255, halfway 128, far 1, nothing 0.
    assert out.tolist() == [[255, 128, 1, 0]]


def test_inverse_mode_levels():
    depth = np.array([[1.0, 2.0, 4.0, INF]])
    out = encode_depth(depth, DepthRange(1, 4), mode="inverse")
    # (1/z - 1/far) / (1/near - 1/far): 1, 1/3, 0.
    expected = [1 + round(1.0 * 254), 1 + round((0.5 - 0.25) / 0.75 * 254), 1, 0]
    assert out.tolist() == [expected]
    assert encode_depth(depth, DepthRange(1, 4)).tolist() == [expected]  # inverse by default


def test_inverse_gives_near_things_more_levels_than_linear():
    depth = np.linspace(1, 10, 50)[None, :]
    inverse = encode_depth(depth, DepthRange(1, 10), mode="inverse")[0].astype(int)
    linear = encode_depth(depth, DepthRange(1, 10), mode="linear")[0].astype(int)
    assert -np.diff(inverse)[:5].sum() > -np.diff(linear)[:5].sum()
    assert (np.diff(inverse) <= 0).all() and (np.diff(linear) <= 0).all()  # farther = darker


def test_sixteen_bit():
    depth = np.array([[1.0, 3.0, 5.0, INF]])
    out = encode_depth(depth, DepthRange(1, 5), mode="linear", bit_depth=16)
    assert out.dtype == np.uint16
    assert out.tolist() == [[65535, 1 + round(0.5 * 65534), 1, 0]]


def test_values_outside_the_range_are_clipped():
    depth = np.array([[0.5, 1.0, 5.0, 9.0, np.nan]])
    for mode in ("inverse", "linear"):
        assert encode_depth(depth, DepthRange(1, 5), mode=mode).tolist() == [[255, 255, 1, 1, 0]]


def test_a_static_surface_keeps_its_level_across_frames():
    # The point of a per-shot range: a wall at 6 m keeps its grey while the character moves.
    wall = np.full((4, 4), 6.0)
    frames = []
    for distance in (2.0, 3.0, 5.0):
        frame = wall.copy()
        frame[1:3, 1:3] = distance
        frames.append(frame)
    depth_range = shot_depth_range(frames)
    levels = [encode_depth(f, depth_range)[0, 0] for f in frames]
    assert len(set(levels)) == 1


def test_float32_maps_from_the_rasteriser_are_accepted_and_shape_checked():
    depth = np.array([[2.0, INF]], np.float32)
    assert encode_depth(depth, DepthRange(1, 4)).shape == (1, 2)
    with pytest.raises(ValueError):
        encode_depth(np.ones(3), DepthRange(1, 4))
    with pytest.raises(ValueError):
        encode_depth(depth, DepthRange(1, 4), mode="log")
    with pytest.raises(ValueError):
        encode_depth(depth, DepthRange(1, 4), bit_depth=12)


@pytest.mark.parametrize("bits", [8, 16])
def test_encoded_maps_write_as_grey_png(tmp_path, bits):
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 9, (24, 32))
    depth[rng.random(depth.shape) < 0.2] = INF
    image = encode_depth(depth, DepthRange(1, 9), bit_depth=bits)
    write_png(tmp_path / "depth.png", image, bit_depth=bits)
    back = read_png(tmp_path / "depth.png")
    assert back.shape == (24, 32) and back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)

import numpy as np
import pytest

from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import OPENPOSE_BODY
from posebridge.retarget.canvas import canvas_fit, fit_into_frame


def sequence(points, canvas):
    data = np.zeros((1, 1, 18, 3), np.float32)
    data[0, 0, : len(points)] = [(x, y, 1.0) for x, y in points]
    return KeypointSequence(OPENPOSE_BODY, data, canvas, [0])


def test_same_aspect_scales_edges_onto_edges():
    fit = canvas_fit((256, 256), (512, 512))
    assert not fit.letterboxed and fit.scale == 2
    out, _ = fit_into_frame(sequence([(-0.5, -0.5), (255.5, 255.5), (127.5, 127.5)], (256, 256)), (512, 512))
    np.testing.assert_allclose(out.data[0, 0, :3, :2], [(-0.5, -0.5), (511.5, 511.5), (255.5, 255.5)])


def test_portrait_clip_is_centred_in_a_landscape_frame():
    fit = canvas_fit((1080, 1920), (1280, 720))
    assert fit.letterboxed
    assert fit.scale == pytest.approx(720 / 1920)
    out, _ = fit_into_frame(sequence([(539.5, 959.5), (-0.5, -0.5), (1079.5, 1919.5)], (1080, 1920)), (1280, 720))
    centre, top_left, bottom_right = out.data[0, 0, :3, :2]
    np.testing.assert_allclose(centre, (639.5, 359.5))
    assert top_left[1] == pytest.approx(-0.5) and bottom_right[1] == pytest.approx(719.5)
    assert top_left[0] == pytest.approx((1280 - 1080 * fit.scale) / 2 - 0.5)
    assert "fitted inside it, centred" in fit.describe((1080, 1920), (1280, 720))


def test_directions_are_kept_and_absent_points_stay_at_zero():
    seq = sequence([(100, 100), (200, 400)], (1080, 1920))
    out, _ = fit_into_frame(seq, (512, 512))
    a, b = out.data[0, 0, 0, :2], out.data[0, 0, 1, :2]
    assert np.degrees(np.arctan2(*(b - a)[::-1])) == pytest.approx(np.degrees(np.arctan2(300, 100)), abs=1e-4)
    assert (out.data[0, 0, 2:] == 0).all()

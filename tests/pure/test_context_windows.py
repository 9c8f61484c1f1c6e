"""Context windows, their blending weights and FreeNoise's repeated noise (pure numpy)."""
import numpy as np
import pytest

from posebridge.backend.pipelines.windows import (
    context_windows,
    frame_weight_sums,
    freenoise_sources,
    window_overhead,
    window_weights,
)


@pytest.mark.parametrize("frames,length,stride", [(40, 16, 4), (240, 16, 4), (17, 16, 8), (48, 16, 8), (33, 8, 3)])
def test_windows_cover_every_frame_in_order_at_full_length(frames, length, stride):
    windows = context_windows(frames, length, stride)
    assert all(len(w) == length for w in windows)
    assert windows[0].start == 0 and windows[-1].stop == frames
    starts = [w.start for w in windows]
    assert starts == sorted(set(starts))
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))  # neighbours always overlap
    covered = np.zeros(frames, bool)
    for w in windows:
        covered[w.start : w.stop] = True
    assert covered.all()


def test_a_short_shot_is_one_window_of_all_its_frames():
    assert context_windows(12, 16, 4) == [range(12)]
    assert context_windows(16, 16, 4) == [range(16)]


def test_window_counts_and_overhead():
    assert len(context_windows(40, 16, 4)) == 7
    assert len(context_windows(240, 16, 4)) == 57
    assert window_overhead(16, 16, 4) == 1.0
    # A long shot approaches length / stride: 16/4 = 4 passes a frame per step, 16/8 = 2.
    assert window_overhead(2400, 16, 4) == pytest.approx(4.0, rel=0.01)
    assert window_overhead(2400, 16, 8) == pytest.approx(2.0, rel=0.01)


def test_bad_windows_are_refused():
    for args in [(0, 16, 4), (10, 0, 1), (10, 4, 0), (10, 4, 5)]:
        with pytest.raises(ValueError):
            context_windows(*args)


def test_pyramid_weights_fall_towards_the_edges_and_stay_positive():
    weights = window_weights(8)
    assert list(weights) == [1, 2, 3, 4, 4, 3, 2, 1]
    assert (window_weights(5) > 0).all() and list(window_weights(5)) == [1, 2, 3, 2, 1]
    sums = frame_weight_sums(24, context_windows(24, 8, 4))
    assert (sums > 0).all()


def test_freenoise_sources_repeat_the_first_window_shuffled():
    sources = freenoise_sources(40, 16, 4, seed=3)
    assert list(sources[:16]) == list(range(16))
    for window in context_windows(40, 16, 4):
        assert sorted(sources[window.start : window.stop]) == list(range(16))  # a permutation
    assert not np.array_equal(sources[16:20], sources[0:4])  # shuffled, not copied
    assert np.array_equal(sources, freenoise_sources(40, 16, 4, seed=3))
    assert not np.array_equal(sources, freenoise_sources(40, 16, 4, seed=4))
    assert list(freenoise_sources(10, 16, 4, seed=0)) == list(range(10))

"""backend/scale/units.py: a job cut into units of whole batches from its first frame; temporal
jobs whole."""
import pytest

from posebridge.backend.scale.units import Unit, plan_units


def test_frames_split_on_batch_boundaries_about_two_units_per_replica():
    units = plan_units("frames", 24, 2, 2)
    assert units == [Unit(0, 0, 6), Unit(1, 6, 12), Unit(2, 12, 18), Unit(3, 18, 24)]
    assert [u.size for u in plan_units("frames", 12, 2, 2)] == [4, 4, 2, 2]  # 6 batches in 4 units
    for count, batch, replicas in [(25, 4, 3), (7, 3, 2), (1, 4, 8), (100, 1, 2), (48, 4, 2)]:
        units = plan_units("frames", count, batch, replicas)
        assert units[0].start == 0 and units[-1].stop == count
        assert all(a.stop == b.start for a, b in zip(units, units[1:]))  # every frame once, in order
        assert all(u.start % batch == 0 for u in units)  # each frame keeps its batch companions
        assert [u.index for u in units] == list(range(len(units)))
        batches = -(-count // batch)
        assert len(units) == min(batches, 2 * replicas)
        whole = [u.size // batch for u in units if u.stop != count]  # the last may hold a part batch
        assert not whole or max(whole) - min(whole) <= 1


def test_temporal_jobs_are_one_unit():
    assert plan_units("animatediff", 16, 4, 2) == [Unit(0, 0, 16)]
    assert plan_units("wan-vace", 100, 1, 4) == [Unit(0, 0, 100)]


@pytest.mark.parametrize("args", [(0, 4, 2), (8, 0, 2), (8, 4, 0)])
def test_nothing_to_plan_is_an_error(args):
    with pytest.raises(ValueError, match="cannot plan"):
        plan_units("frames", *args)

"""Prompt travel schedules: parsing "N: prompt | M: prompt", API maps, per-frame blends."""
import pytest

from posebridge.backend.pipelines.prompts import check_schedule, parse_prompt_schedule, prompt_blend


def test_a_plain_prompt_is_no_schedule():
    assert parse_prompt_schedule("a knight: dancing | slowly") is None
    assert parse_prompt_schedule("") is None


def test_schedule_is_parsed_and_sorted():
    text = "48: running in the rain | 0: walking in a forest"
    assert parse_prompt_schedule(text) == {0: "walking in a forest", 48: "running in the rain"}
    assert parse_prompt_schedule("-5: before | 10:after") == {-5: "before", 10: "after"}


@pytest.mark.parametrize("text,message", [
    ("0: a | b", "does not start with 'FRAME:'"),
    ("0: a | 0: b", "names frame 0 twice"),
    ("0: a | 4:  ", "empty"),
])
def test_bad_schedules_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt_schedule(text)


def test_api_maps_take_string_keys():
    assert check_schedule({"12": " b ", "3": "a"}) == {3: "a", 12: "b"}
    for bad in ({}, {"x": "a"}, {"1": ""}, {"1": 5}):
        with pytest.raises(ValueError):
            check_schedule(bad)


def test_frames_blend_linearly_between_keys():
    schedule = {10: "a", 20: "b", 30: "c"}
    blends = prompt_blend([5, 10, 15, 20, 29, 30, 40], schedule)
    assert blends[0] == ("a", "a", 0.0)  # before the first key: the first prompt
    assert blends[1] == ("a", "a", 0.0)
    assert blends[2] == ("a", "b", 0.5)
    assert blends[3] == ("b", "c", 0.0)
    assert blends[4] == ("b", "c", pytest.approx(0.9))
    assert blends[5] == blends[6] == ("c", "c", 0.0)  # from the last key on: the last prompt

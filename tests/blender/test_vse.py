"""Generated frames in the VSE: one image strip, a free channel, updates in place, gaps held."""
import numpy as np
import pytest

import bpy

from posebridge.draw.png import write_png
from posebridge.render import vse


def _frames(folder, count, size=(48, 64), first=1, prefix="frame"):
    """``count`` PNGs of ``size`` (height, width) named ``<prefix>_NNNN.png``; returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{prefix}_{first + i:04d}.png"
        write_png(folder / name, np.full(size + (3,), 20 * i % 256, np.uint8))
        names.append(name)
    return names


def _user_strip(scene, name, channel, start, end):
    """A colour strip covering frames start..end-1, as a user would have."""
    collection = vse.strips_collection(scene)
    if bpy.app.version >= (5, 0):
        return collection.new_effect(name, "COLOR", channel, start, length=end - start)
    return collection.new_effect(name, "COLOR", channel, start, frame_end=end)


def _state(strip):
    return (strip.name, strip.type, strip.channel, strip.frame_final_start, strip.frame_final_end)


@pytest.fixture
def scene(empty_scene):
    """An empty scene without a sequence editor (the factory scene may come with one)."""
    empty_scene.sequence_editor_clear()
    assert empty_scene.sequence_editor is None
    return empty_scene


def test_one_strip_holds_every_frame_from_the_start_frame(scene, tmp_path):
    names = _frames(tmp_path / "gen", 5)
    assert vse.find_strip(scene, "PoseBridge") is None
    assert scene.sequence_editor is None, "looking up a strip creates no sequence editor"

    strip = vse.place_image_sequence(scene, "PoseBridge", tmp_path / "gen", names, 10)

    assert scene.sequence_editor is not None
    assert [s.name for s in vse.strips_collection(scene)] == ["PoseBridge"]
    assert vse.find_strip(scene, "PoseBridge") == strip
    assert strip.type == "IMAGE" and strip.name == "PoseBridge"
    assert [e.filename for e in strip.elements] == names
    assert bpy.path.abspath(strip.directory).rstrip("/\\") == str(tmp_path / "gen")
    assert (strip.frame_final_start, strip.frame_final_duration, strip.frame_final_end) == (10, 5, 15)
    assert strip.channel == 1
    assert strip.colorspace_settings.name == "sRGB"
    # FIT into the factory 1920x1080 frame: 64x48 scales by min(30, 22.5).
    assert strip.transform.scale_x == pytest.approx(22.5) and strip.transform.scale_y == pytest.approx(22.5)


def test_files_keep_the_given_order(scene, tmp_path):
    names = _frames(tmp_path, 3)
    strip = vse.place_image_sequence(scene, "gen", tmp_path, names[::-1], 1)
    assert [e.filename for e in strip.elements] == names[::-1]


def test_goes_above_a_user_strip_that_overlaps_and_leaves_it_alone(scene, tmp_path):
    user = _user_strip(scene, "edit", 1, 1, 101)
    before = _state(user)
    strip = vse.place_image_sequence(scene, "gen", tmp_path, _frames(tmp_path, 8), 20)

    assert strip.channel == 2
    assert _state(vse.find_strip(scene, "edit")) == before
    assert len(vse.strips_collection(scene)) == 2


def test_a_user_strip_elsewhere_in_time_does_not_push_it_up(scene, tmp_path):
    _user_strip(scene, "later", 1, 200, 250)
    strip = vse.place_image_sequence(scene, "gen", tmp_path, _frames(tmp_path, 8), 1)
    assert strip.channel == 1


def test_rerun_updates_the_same_strip_in_place(scene, tmp_path):
    first = vse.place_image_sequence(scene, "gen", tmp_path / "a", _frames(tmp_path / "a", 5), 10)
    first.channel = 3  # the user moved it
    first.frame_offset_start = 2  # ... and trimmed it
    first.blend_alpha = 0.5
    longer = _frames(tmp_path / "b", 8, first=20)

    again = vse.place_image_sequence(scene, "gen", tmp_path / "b", longer, 20)

    assert [s.name for s in vse.strips_collection(scene)] == ["gen"], "no second strip"
    assert again == first
    assert [e.filename for e in again.elements] == longer
    assert bpy.path.abspath(again.directory).rstrip("/\\") == str(tmp_path / "b")
    assert (again.frame_final_start, again.frame_final_duration) == (20, 8), "trim reset, length follows"
    assert again.channel == 3, "the user's channel is kept while it is free"
    assert again.blend_alpha == pytest.approx(0.5), "the user's strip settings are kept"

    shorter = vse.place_image_sequence(scene, "gen", tmp_path / "a", _frames(tmp_path / "a", 2), -4)
    assert [e.filename for e in shorter.elements] == ["frame_0001.png", "frame_0002.png"]
    assert (shorter.frame_final_start, shorter.frame_final_end) == (-4, -2)


def test_rerun_moves_only_when_its_channel_is_taken_over_the_new_range(scene, tmp_path):
    names = _frames(tmp_path, 5)
    strip = vse.place_image_sequence(scene, "gen", tmp_path, names, 1)
    assert strip.channel == 1
    user = _user_strip(scene, "title", 1, 10, 20)
    before = _state(user)

    vse.place_image_sequence(scene, "gen", tmp_path, names, 3)  # 3..7: channel 1 still free
    assert strip.channel == 1

    vse.place_image_sequence(scene, "gen", tmp_path, names, 8)  # 8..12 meets the title
    assert strip.channel == 2 and strip.frame_final_start == 8
    assert _state(vse.find_strip(scene, "title")) == before


def test_refits_to_a_new_image_size_unless_the_user_scaled_it(scene, tmp_path):
    small = _frames(tmp_path / "small", 2, size=(48, 64))
    big = _frames(tmp_path / "big", 2, size=(96, 128))
    strip = vse.place_image_sequence(scene, "gen", tmp_path / "small", small, 1)
    assert strip.transform.scale_x == pytest.approx(22.5)

    vse.place_image_sequence(scene, "gen", tmp_path / "big", big, 1)
    assert strip.transform.scale_x == pytest.approx(11.25) and strip.transform.scale_y == pytest.approx(11.25)

    strip.transform.scale_x = strip.transform.scale_y = 3.0
    vse.place_image_sequence(scene, "gen", tmp_path / "small", small, 1)
    assert strip.transform.scale_x == pytest.approx(3.0), "a user's own scale stays"


def test_gaps_hold_the_previous_frame_so_later_frames_keep_their_time(scene, tmp_path):
    names = _frames(tmp_path, 5)  # frame_0001 .. frame_0005
    del names[2]
    (tmp_path / "frame_0003.png").unlink()
    numbered = {int(n[6:10]): n for n in names}

    elements = vse.timeline_elements(numbered)
    assert elements.frame_start == 1 and elements.held == [3]
    assert elements.filenames == [
        "frame_0001.png", "frame_0002.png", "frame_0002.png", "frame_0004.png", "frame_0005.png"
    ]

    strip = vse.place_image_sequence(scene, "gen", tmp_path, elements.filenames, elements.frame_start)
    assert strip.frame_final_end == 6
    assert strip.strip_elem_from_frame(3).filename == "frame_0002.png"
    assert strip.strip_elem_from_frame(4).filename == "frame_0004.png"


def test_timeline_elements_of_negative_and_single_frames():
    assert vse.timeline_elements({-2: "a", 0: "c"}) == vse.TimelineElements(-2, ["a", "a", "c"], [-1])
    assert vse.timeline_elements({7: "x"}) == vse.TimelineElements(7, ["x"], [])
    with pytest.raises(ValueError):
        vse.timeline_elements({})


def test_errors_leave_the_scene_as_it_was(scene, tmp_path):
    names = _frames(tmp_path, 3)
    with pytest.raises(FileNotFoundError, match="frame_0009.png"):
        vse.place_image_sequence(scene, "gen", tmp_path, names + ["frame_0009.png"], 1)
    with pytest.raises(ValueError, match="at least one"):
        vse.place_image_sequence(scene, "gen", tmp_path, [], 1)
    with pytest.raises(ValueError, match="not paths"):
        vse.place_image_sequence(scene, "gen", tmp_path, [str(tmp_path / names[0])], 1)
    assert vse.find_strip(scene, "gen") is None

    user = _user_strip(scene, "gen", 1, 1, 50)
    with pytest.raises(ValueError, match="color strip called 'gen'"):
        vse.place_image_sequence(scene, "gen", tmp_path, names, 1)
    assert _state(user) == ("gen", "COLOR", 1, 1, 50)
    assert len(vse.strips_collection(scene)) == 1


def test_choose_channel_rules():
    taken = [(1, 0, 100), (3, 50, 60), (5, 200, 300)]
    assert vse.choose_channel(taken, 10, 20) == 2, "above the one overlapping strip"
    assert vse.choose_channel(taken, 55, 58) == 4, "above the highest overlapping strip"
    assert vse.choose_channel(taken, 100, 110) == 1, "ends are exclusive: touching is not overlapping"
    assert vse.choose_channel(taken, 10, 20, keep=7) == 7
    assert vse.choose_channel(taken, 55, 58, keep=3) == 4, "a kept channel must be free"
    # The top channel taken: the lowest free one instead.
    assert vse.choose_channel([(vse.MAX_CHANNEL, 0, 10), (1, 0, 10)], 0, 10) == 2
    with pytest.raises(RuntimeError, match="every VSE channel"):
        vse.choose_channel([(c, 0, 10) for c in range(1, vse.MAX_CHANNEL + 1)], 5, 6)


def test_blend_relative_directory_is_kept_relative(scene, tmp_path):
    names = _frames(tmp_path / "gen", 3)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    strip = vse.place_image_sequence(bpy.context.scene, "gen", "//gen", names, 1)
    assert strip.directory.startswith("//")
    assert bpy.path.abspath(strip.directory).rstrip("/\\") == str(tmp_path / "gen")
    with pytest.raises(FileNotFoundError, match="no such frame file"):
        vse.place_image_sequence(bpy.context.scene, "gen", "//elsewhere", names, 1)


def _render_frame(scene, frame, path):
    """The scene's VSE output at ``frame`` as an RGB array (a real render, as the user would get)."""
    from posebridge.draw.png import read_png

    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    if hasattr(scene.render.image_settings, "media_type"):
        scene.render.image_settings.media_type = "IMAGE"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    scene.render.filepath = str(path)
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    return read_png(path)


def test_rerun_shows_new_content_under_the_same_file_names(scene, tmp_path):
    """Regenerating rewrites frame_0001.png...: the VSE must not show its cached old images."""
    names = _frames(tmp_path / "gen", 2)
    vse.place_image_sequence(scene, "gen", tmp_path / "gen", names, 1)
    before = _render_frame(scene, 1, tmp_path / "before.png")
    assert np.abs(before.astype(int) - 0).max() <= 2

    for name in names:
        write_png(tmp_path / "gen" / name, np.full((48, 64, 3), 200, np.uint8))
    vse.place_image_sequence(scene, "gen", tmp_path / "gen", names, 1)
    after = _render_frame(scene, 1, tmp_path / "after.png")
    assert np.abs(after.astype(int) - 200).max() <= 2

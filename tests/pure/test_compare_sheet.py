"""The first-vs-last comparison sheet: layout, frame picking (numeric, negatives), poses, errors."""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.draw.compare_sheet import BACKGROUND, as_rgb8, first_last_sheet, write_first_last_sheet
from posebridge.draw.png import read_png, write_png

GAP = 4


def _solid(colour, size=(16, 24)):
    return np.full(size + (3,), colour, np.uint8)


def _cell(sheet, row, col, size=(16, 24), gap=GAP):
    h, w = size
    top, left = gap + row * (h + gap), gap + col * (w + gap)
    return sheet[top:top + h, left:left + w]


def test_generated_row_over_pose_row_with_gaps():
    red, green, blue, white = (200, 0, 0), (0, 200, 0), (0, 0, 200), (255, 255, 255)
    sheet = first_last_sheet(_solid(red), _solid(green), _solid(blue), _solid(white), gap=GAP)

    assert sheet.dtype == np.uint8 and sheet.shape == (GAP + 2 * (16 + GAP), GAP + 2 * (24 + GAP), 3)
    for (row, col), colour in {(0, 0): red, (0, 1): green, (1, 0): blue, (1, 1): white}.items():
        assert (_cell(sheet, row, col) == colour).all()
    # The separators (outer border and the gaps between cells) stay background.
    assert (sheet[:GAP] == BACKGROUND).all() and (sheet[:, GAP + 24:2 * GAP + 24] == BACKGROUND).all()
    assert (sheet[GAP + 16:2 * GAP + 16] == BACKGROUND).all()


def test_without_poses_one_row_and_single_frame_one_column():
    assert first_last_sheet(_solid(1), _solid(2), gap=GAP).shape == (16 + 2 * GAP, 2 * 24 + 3 * GAP, 3)
    single = first_last_sheet(_solid(7), None, _solid(9), gap=GAP)
    assert single.shape == (2 * 16 + 3 * GAP, 24 + 2 * GAP, 3)
    assert (_cell(single, 1, 0) == 9).all()


def test_pose_pairs_must_be_complete():
    with pytest.raises(ValueError, match="both frames or for neither"):
        first_last_sheet(_solid(1), _solid(2), first_pose=_solid(3))
    with pytest.raises(ValueError, match="no last pose"):
        first_last_sheet(_solid(1), None, _solid(3), _solid(4))


def test_mixed_sizes_and_formats_fill_the_cell():
    """Poses of another size, grey, RGBA and 16-bit inputs all become RGB cells of the frame's size."""
    grey_pose = np.full((32, 48), 100, np.uint8)
    rgba_last = np.zeros((16, 24, 4), np.uint8)
    rgba_last[..., 1] = 50
    deep_pose = np.full((8, 12, 3), 65535, np.uint16)
    sheet = first_last_sheet(_solid(10), rgba_last, grey_pose, deep_pose, gap=GAP)
    assert (_cell(sheet, 0, 1) == (0, 50, 0)).all()
    assert (_cell(sheet, 1, 0) == 100).all()
    assert (_cell(sheet, 1, 1) == 255).all()


def test_wide_frames_shrink_by_a_whole_factor():
    frame = np.zeros((300, 1000, 3), np.uint8)
    sheet = first_last_sheet(frame, frame, gap=GAP, max_cell_width=400)
    # ceil(1000 / 400) = 3: cells of 100 x 334.
    assert sheet.shape == (GAP * 2 + 100, GAP * 3 + 2 * 334, 3)


def test_labels_are_stamped_on_the_generated_cells_only():
    frames = [_solid(128, (120, 120)), _solid(128, (120, 120))]
    plain = first_last_sheet(*frames, _solid(128, (120, 120)), _solid(128, (120, 120)), gap=GAP)
    labelled = first_last_sheet(*frames, _solid(128, (120, 120)), _solid(128, (120, 120)), labels=(-5, 12), gap=GAP)
    changed = (plain != labelled).any(axis=2)
    assert changed[: GAP + 120].any(), "labels are drawn on the generated row"
    assert not changed[GAP + 120:].any(), "the pose row is untouched"
    # A label wider than a tiny cell stays inside that cell.
    tiny = first_last_sheet(_solid(128, (12, 12)), _solid(128, (12, 12)), labels=(-1234, 5678), gap=GAP)
    assert (tiny[:, :GAP] == BACKGROUND).all() and (tiny[:, GAP + 12:2 * GAP + 12] == BACKGROUND).all()
    # White glyph pixels on a black box in each generated cell.
    for col in (0, 1):
        cell = _cell(labelled, 0, col, (120, 120))
        assert (cell == 255).all(axis=2).any() and (cell == 0).all(axis=2).any()


def test_as_rgb8_rejects_other_types():
    with pytest.raises(TypeError):
        as_rgb8(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        as_rgb8(np.zeros((4, 4, 5), np.uint8))


def _write(folder, name, colour, size=(16, 24)):
    folder.mkdir(exist_ok=True)
    write_png(folder / name, _solid(colour, size))


def test_write_picks_numeric_first_and_last_with_negatives_and_matching_poses(tmp_path):
    frames, poses = tmp_path / "frames", tmp_path / "poses"
    # Name order would put frame_-005 after frame_-001, and frame_0100 before frame_0020's
    # neighbours; numeric order must win.
    size = (40, 48)
    for number, colour in {-5: 11, -1: 22, 3: 33, 20: 44, 100: 55}.items():
        _write(frames, f"frame_{number:04d}.png", colour, size)
        _write(poses, f"pose_{number:04d}.png", colour + 100, size)
    _write(frames, "notes.png", 99)  # not a frame
    (frames / ".frame_0200.png.abc123.tmp").write_bytes(b"half")  # an interrupted write

    out = tmp_path / "sheet.png"
    assert write_first_last_sheet(frames, out, poses) == (-5, 100)
    sheet = read_png(out)
    assert sheet.shape == (GAP + 2 * (40 + GAP), GAP + 2 * (48 + GAP), 3)
    # Bottom-right pixels of each cell are clear of the labels.
    assert (_cell(sheet, 0, 0, size)[-1, -1] == 11).all() and (_cell(sheet, 0, 1, size)[-1, -1] == 55).all()
    assert (_cell(sheet, 1, 0, size) == 111).all() and (_cell(sheet, 1, 1, size) == 155).all()


def test_write_without_poses_and_with_one_frame(tmp_path):
    _write(tmp_path / "f", "frame_0007.png", 70)
    out = tmp_path / "one.png"
    assert write_first_last_sheet(tmp_path / "f", out) == (7, 7)
    assert read_png(out).shape == (16 + 2 * GAP, 24 + 2 * GAP, 3)


def test_write_errors_name_the_problem(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no frame_NNNN.png"):
        write_first_last_sheet(empty, tmp_path / "x.png")

    frames, poses = tmp_path / "frames", tmp_path / "poses"
    _write(frames, "frame_0001.png", 1)
    _write(frames, "frame_0009.png", 9)
    _write(poses, "pose_0001.png", 1)
    with pytest.raises(FileNotFoundError, match="frame.s. 9"):
        write_first_last_sheet(frames, tmp_path / "x.png", poses)

    _write(frames, "frame_1.png", 1)
    with pytest.raises(ValueError, match="both carry frame number 1"):
        write_first_last_sheet(frames, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()

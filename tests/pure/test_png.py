"""The numpy/zlib PNG writer and reader: round trips, conformance with an independent decoder,
and atomic replacement."""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from posebridge.draw import png
from posebridge.pose.formats import atomic_file
from posebridge.draw.png import encode_png, read_png, write_png


def _images():
    rng = np.random.default_rng(0)
    yield "rgb", rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), 8
    yield "rgba", rng.integers(0, 256, (20, 11, 4), dtype=np.uint8), 8
    yield "grey", rng.integers(0, 256, (9, 31), dtype=np.uint8), 8
    yield "grey_alpha", rng.integers(0, 256, (5, 6, 2), dtype=np.uint8), 8
    yield "depth16", rng.integers(0, 65536, (17, 23), dtype=np.uint16), 16
    yield "rgb16", rng.integers(0, 65536, (4, 7, 3), dtype=np.uint16), 16
    yield "one_pixel", np.array([[[1, 2, 3]]], np.uint8), 8


@pytest.mark.parametrize("name,image,bits", list(_images()), ids=[n for n, _, _ in _images()])
def test_round_trip(tmp_path, name, image, bits):
    path = tmp_path / f"{name}.png"
    write_png(path, image, bit_depth=bits)
    back = read_png(path)
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


def test_grey_channel_axis_is_dropped(tmp_path):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    write_png(tmp_path / "g.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "g.png"), image[:, :, 0])


def test_non_contiguous_input(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    view = image[::2, ::3, :3]
    write_png(tmp_path / "v.png", view)
    np.testing.assert_array_equal(read_png(tmp_path / "v.png"), view)


def test_structure_is_standard_png():
    image = np.zeros((8, 5, 3), np.uint8)
    image[2, 3] = (255, 10, 0)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    assert struct.unpack(">IIBBBBB", data[16:29]) == (5, 8, 8, 2, 0, 0, 0)
    assert data.endswith(b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    depth = encode_png(np.zeros((2, 3), np.uint16), bit_depth=16)
    assert struct.unpack(">IIBBBBB", depth[16:29]) == (3, 2, 16, 0, 0, 0, 0)


def test_pillow_reads_what_we_write(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), rgb)
    depth = rng.integers(0, 65536, (13, 19), dtype=np.uint16)
    write_png(tmp_path / "depth.png", depth, bit_depth=16)
    with Image.open(tmp_path / "depth.png") as im:
        np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), depth)


def test_we_read_what_pillow_writes(tmp_path):
    # Pillow picks filters per row (Sub, Up and Paeth here); the by-hand test below covers all five.
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    smooth = (np.add.outer(np.arange(40), np.arange(50)) % 256).astype(np.uint8)
    for mode, array in (
        ("RGB", np.stack([smooth, smooth[::-1], rng.integers(0, 256, smooth.shape, dtype=np.uint8)], -1)),
        ("RGBA", np.dstack([np.stack([smooth] * 3, -1), smooth[..., None]])),
        ("L", smooth),
    ):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(array, mode).save(path, optimize=False, compress_level=6)
        np.testing.assert_array_equal(read_png(path), array)


def test_all_filter_types_by_hand(tmp_path):
    # Rows filtered with each PNG filter in turn, built here independently of the reader.
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    raw = image.reshape(10, -1).astype(np.int64)
    bpp = 3
    rows = []
    prev = np.zeros(raw.shape[1], np.int64)
    for y, line in enumerate(raw):
        kind = y % 5
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if kind == 0:
            filt = line
        elif kind == 1:
            filt = line - left
        elif kind == 2:
            filt = line - prev
        elif kind == 3:
            filt = line - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            filt = line - pred
        rows.append(bytes([kind]) + bytes((filt % 256).astype(np.uint8)))
        prev = line
    header = struct.pack(">IIBBBBB", 7, 10, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png._chunk(b"IHDR", header) + png._chunk(b"IDAT", zlib.compress(b"".join(rows))) + png._chunk(b"IEND", b"")
    (tmp_path / "f.png").write_bytes(data)
    np.testing.assert_array_equal(read_png(tmp_path / "f.png"), image)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    old = np.full((4, 4, 3), 9, np.uint8)
    write_png(path, old)

    def broken_replace(src, dst):
        raise OSError("killed mid-write")

    monkeypatch.setattr(atomic_file.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_png(path, np.zeros((4, 4, 3), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_png(path), old)  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ["map.png"]  # and no temporary file is left


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2), np.uint8), bit_depth=16)
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((0, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2), np.uint8), bit_depth=4)
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError):
        read_png(tmp_path / "x.png")
    corrupt = bytearray(encode_png(np.zeros((3, 3, 3), np.uint8)))
    corrupt[30] ^= 0xFF  # inside the IHDR/IDAT area: the CRC no longer matches
    (tmp_path / "c.png").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError):
        read_png(tmp_path / "c.png")


def test_pose_map_sized_png_is_small_and_exact(tmp_path):
    image = np.zeros((512, 512, 3), np.uint8)
    image[100:140, 200:260] = (153, 51, 0)
    image[300, :] = 255
    write_png(tmp_path / "m.png", image)
    assert (tmp_path / "m.png").stat().st_size < 10_000
    np.testing.assert_array_equal(read_png(tmp_path / "m.png"), image)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_files_get_the_usual_permissions(tmp_path):
    old_mask = os.umask(0o027)
    try:
        write_png(tmp_path / "p.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        os.umask(old_mask)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o640


def _palette_image(rng, colours: int, size=(37, 53)):
    palette = rng.integers(0, 256, (colours, 3)).astype(np.uint8)
    return rng.integers(0, colours, size).astype(np.uint8), palette


@pytest.mark.parametrize("colours", [1, 2, 56, 256])
def test_palette_png_reads_back_as_its_colours(tmp_path, colours):
    indices, palette = _palette_image(np.random.default_rng(colours), colours)
    write_png(tmp_path / "p.png", indices, palette=palette)
    np.testing.assert_array_equal(read_png(tmp_path / "p.png"), palette[indices])


def test_palette_png_is_what_pillow_reads(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    indices, palette = _palette_image(np.random.default_rng(7), 56)
    write_png(tmp_path / "p.png", indices, palette=palette)
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), palette[indices])


def test_palette_input_is_checked():
    indices = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="indices"):
        encode_png(np.zeros((2, 2, 3), np.uint8), palette=np.zeros((4, 3), np.uint8))
    with pytest.raises(ValueError, match="palette"):
        encode_png(indices, palette=np.zeros((257, 3), np.uint8))
    with pytest.raises(ValueError, match="palette"):
        encode_png(indices, palette=np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        encode_png(np.zeros((0, 2), np.uint8), palette=np.zeros((4, 3), np.uint8))


def test_palette_index_beyond_the_palette_is_refused(tmp_path):
    # Written by hand: encode_png never makes one, but a reader must not index past PLTE.
    header = struct.pack(">IIBBBBB", 2, 1, 8, 3, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + png._chunk(b"IHDR", header) + png._chunk(b"PLTE", bytes(6))
            + png._chunk(b"IDAT", zlib.compress(bytes([0, 1, 5]))) + png._chunk(b"IEND", b""))
    (tmp_path / "bad.png").write_bytes(data)
    with pytest.raises(ValueError, match="palette index"):
        read_png(tmp_path / "bad.png")

"""The JPEG header reader: sizes from real encoder output, refusals of everything else."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from elastic_inference.core.errors import InvalidMessage
from elastic_inference.core.jpeg import DEFAULT_MAX_PIXELS, check_jpeg, check_jpeg_file, jpeg_size
from tests.jpegs import with_size


def encoded(w: int, h: int, *flags: int) -> bytes:
    image = np.random.default_rng(w * h).integers(0, 255, (h, w, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", image, list(flags))
    assert ok
    return buf.tobytes()


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


SMALL = encoded(8, 8)
SOF = SMALL.index(b"\xff\xc0")


@pytest.mark.parametrize("w,h,flags", [
    (1, 1, ()), (640, 360, ()), (17, 1023, ()), (300, 200, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    (64, 48, (cv2.IMWRITE_JPEG_OPTIMIZE, 1)), (33, 7, (cv2.IMWRITE_JPEG_RST_INTERVAL, 1)),
    (96, 64, (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)),
])
def test_size_of_real_encoder_output(w: int, h: int, flags: tuple[int, ...]) -> None:
    assert jpeg_size(encoded(w, h, *flags)) == (w, h)


def test_grey_and_extended_and_progressive_frame_headers() -> None:
    ok, buf = cv2.imencode(".jpg", np.zeros((5, 9), np.uint8))
    assert ok and jpeg_size(buf.tobytes()) == (9, 5)
    for sof in (0xC1, 0xC2, 0xC3, 0xC9, 0xCA):  # extended, progressive, lossless, arithmetic
        data = bytearray(SMALL)
        data[SOF + 1] = sof
        assert jpeg_size(bytes(data)) == (8, 8)


def test_fill_bytes_standalone_markers_and_big_segments_are_walked() -> None:
    body = SMALL[2:]
    padded = (b"\xff\xd8" + segment(0xE1, b"Exif\x00\x00" + b"\xff\xd8\xff\xc0" * 4000)
              + b"\xff\xff\xff" + b"\xff\xd0" + segment(0xFE, b"a comment") + b"\xff" + body)
    assert jpeg_size(padded) == (8, 8)  # the thumbnail-like bytes inside APP1 are skipped


def test_the_bomb_is_read_as_what_it_declares() -> None:
    bomb = with_size(SMALL, 32767, 32767)
    assert len(bomb) < 1000 and jpeg_size(bomb) == (32767, 32767)
    with pytest.raises(InvalidMessage, match="32767x32767 but the message says 1x1"):
        check_jpeg(bomb, DEFAULT_MAX_PIXELS, (1, 1))
    with pytest.raises(InvalidMessage, match="exceeds the 33177600 pixel limit"):
        check_jpeg(bomb, DEFAULT_MAX_PIXELS, (32767, 32767))
    assert check_jpeg(with_size(SMALL, 7680, 4320), DEFAULT_MAX_PIXELS) == (7680, 4320)
    with pytest.raises(InvalidMessage, match="pixel limit"):
        check_jpeg(with_size(SMALL, 7681, 4320), DEFAULT_MAX_PIXELS)


@pytest.mark.parametrize("data,reason", [
    (b"", "SOI"), (b"\xff\xd8", "no marker"), (b"\x89PNG\r\n\x1a\n", "SOI"),
    (b"\xff\xd8\xff", "truncated"), (b"\xff\xd8\xff\xff\xff\xff", "truncated"),
    (b"\xff\xd8\xff\xe0\x00", "length"), (b"\xff\xd8\xff\xe0\x00\x10JFIF", "does not fit"),
    (b"\xff\xd8\xff\xe0\x00\x01xx", "does not fit"), (b"\xff\xd8garbage!", "no marker"),
    (b"\xff\xd8" + segment(0xE0, b"JFIF\x00") + b"junk", "no marker"),
    (b"\xff\xd8\xff\xd9\x00\x00", "FFD9"), (b"\xff\xd8\xff\xd8\x00\x00", "FFD8"),
    (b"\xff\xd8" + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"), "FFDA"),
    (b"\xff\xd8\xff\x00\x00\x00", "FF00"),
    (b"\xff\xd8" + segment(0xC0, b"\x08\x00\x10"), "too short"),
    (b"\xff\xd8" + segment(0xC0, b"\x08\x00\x00\x00\x10\x01\x01\x11\x00"), "empty image"),
    (b"\xff\xd8" + segment(0xC2, b"\x08\x00\x10\x00\x00\x01\x01\x11\x00"), "empty image"),
])
def test_malformed_headers_are_invalid(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        jpeg_size(data)


def test_every_truncation_of_a_header_is_invalid_never_another_error() -> None:
    end = SOF + 2 + int.from_bytes(SMALL[SOF + 2:SOF + 4], "big")  # the whole frame header
    for n in range(end):
        with pytest.raises(InvalidMessage):
            jpeg_size(SMALL[:n])
    assert jpeg_size(SMALL[:end]) == (8, 8)


def test_random_mutations_give_a_size_or_invalid_and_agree_with_the_decoder() -> None:
    """Fuzz: flipped bytes in the header give InvalidMessage or a size; when OpenCV decodes the
    mutant, it is of the size that was read (so the check guards what is decoded)."""
    rng = random.Random(11)
    base = encoded(24, 16)
    head = base.index(b"\xff\xda")
    decoded = 0
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(2, head)] = rng.randrange(256)
        try:
            w, h = jpeg_size(bytes(data))
        except InvalidMessage:
            continue
        if w * h > 4096 * 4096:
            continue
        try:
            image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            continue
        if image is not None:
            decoded += 1
            assert image.shape[:2] == (h, w)
    assert decoded > 100


def test_jpeg_files_are_checked_and_other_files_left_alone(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(with_size(SMALL, 20000, 20000))
    with pytest.raises(InvalidMessage, match="20000x20000"):
        check_jpeg_file(str(bomb), DEFAULT_MAX_PIXELS)
    fine = tmp_path / "fine.jpg"
    fine.write_bytes(SMALL)
    check_jpeg_file(str(fine), DEFAULT_MAX_PIXELS)
    video = tmp_path / "clip.avi"
    video.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    check_jpeg_file(str(video), DEFAULT_MAX_PIXELS)
    with pytest.raises(InvalidMessage, match="cannot read"):
        check_jpeg_file(str(tmp_path), DEFAULT_MAX_PIXELS)

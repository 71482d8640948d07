from __future__ import annotations

import cv2
import msgpack
import numpy as np
import pytest

from elastic_inference.core import frame
from elastic_inference.core.errors import InvalidMessage
from tests.jpegs import with_size

JPEG = cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))[1].tobytes()


def make(**kw: object) -> frame.Frame:
    args: dict[str, object] = dict(stream="cam-1", type="face", seq=3, ts=1700000000.5, w=640,
                                   h=360, jpeg=JPEG)
    args.update(kw)
    return frame.Frame(**args)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    f = make()
    assert frame.decode(f.encode()) == f


def test_integer_timestamp_is_accepted_as_float() -> None:
    raw = msgpack.packb({"v": 1, "stream": "s", "type": "face", "seq": 0, "ts": 1700000000,
                         "w": 640, "h": 360, "jpeg": JPEG}, use_bin_type=True)
    assert frame.decode(raw).ts == 1700000000.0


@pytest.mark.parametrize("raw", [b"", b"\x92\x01", b"\xc1garbage", b"not msgpack at all \xff",
                                 msgpack.packb([1, 2, 3])])
def test_garbage_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        frame.decode(raw)


def test_truncated_message_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        frame.decode(make().encode()[:-20])


def test_unknown_version_is_invalid() -> None:
    data = msgpack.unpackb(make().encode())
    data["v"] = 3
    with pytest.raises(InvalidMessage, match="version"):
        frame.decode(msgpack.packb(data, use_bin_type=True))


def test_a_reference_frame_round_trips_without_its_jpeg() -> None:
    f = make(jpeg=b"", ref="1700000000500-0")
    raw = f.encode()
    assert JPEG[:64] not in raw and len(raw) < 120
    assert msgpack.unpackb(raw)["v"] == frame.REF_VERSION
    assert frame.decode(raw) == f


def test_a_fetched_jpeg_is_checked_against_the_frame() -> None:
    f = frame.decode(make(jpeg=b"", ref="5-1").encode())
    frame.check_fetched(f, JPEG)
    with pytest.raises(InvalidMessage, match=r"640x360|size"):
        frame.check_fetched(f, with_size(JPEG, 4000, 3000))
    with pytest.raises(InvalidMessage, match="pixel limit"):
        frame.check_fetched(f, with_size(JPEG, 640, 360), max_pixels=640 * 359)
    with pytest.raises(InvalidMessage, match="size 0"):
        frame.check_fetched(f, b"")
    with pytest.raises(InvalidMessage, match="SOI"):
        frame.check_fetched(f, b"GIF89a" + JPEG)


@pytest.mark.parametrize("ref", ["", "abc", "1-2-3", 5, "1" * 30 + "-0"])
def test_a_bad_reference_is_invalid(ref: object) -> None:
    data = msgpack.unpackb(make(jpeg=b"", ref="1-0").encode())
    data["ref"] = ref
    with pytest.raises(InvalidMessage):
        frame.decode(msgpack.packb(data, use_bin_type=True))


def test_a_reference_frame_lacking_its_ref_is_invalid() -> None:
    data = msgpack.unpackb(make(jpeg=b"", ref="1-0").encode())
    del data["ref"]
    with pytest.raises(InvalidMessage, match="ref"):
        frame.decode(msgpack.packb(data, use_bin_type=True))


@pytest.mark.parametrize("field,value", [
    ("stream", "bad id"), ("stream", "x" * 65), ("type", "Face"), ("seq", -1), ("seq", True),
    ("ts", float("nan")), ("ts", 0), ("w", 0), ("h", 20000), ("jpeg", b"PNG..."),
    ("jpeg", b""),
])
def test_invalid_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(InvalidMessage):
        make(**{field: value})


def test_oversized_jpeg_is_rejected() -> None:
    with pytest.raises(InvalidMessage, match="size"):
        make(jpeg=JPEG + b"0" * frame.MAX_JPEG_BYTES)


def test_missing_field_is_named() -> None:
    data = msgpack.unpackb(make().encode())
    del data["seq"]
    with pytest.raises(InvalidMessage, match="seq"):
        frame.decode(msgpack.packb(data, use_bin_type=True))


def test_jpeg_of_another_size_than_the_message_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match="32767x32767 but the message says 1x1"):
        frame.decode(make(w=1, h=1, jpeg=with_size(JPEG, 32767, 32767)).encode())
    with pytest.raises(InvalidMessage, match="640x360 but the message says 360x640"):
        frame.decode(make(w=360, h=640).encode())


def test_jpeg_over_the_pixel_cap_is_invalid() -> None:
    raw = make(w=16000, h=9000, jpeg=with_size(JPEG, 16000, 9000)).encode()
    with pytest.raises(InvalidMessage, match="exceeds the 33177600 pixel limit"):
        frame.decode(raw)
    assert frame.decode(raw, max_pixels=16000 * 9000).w == 16000
    with pytest.raises(InvalidMessage, match="pixel limit"):
        frame.decode(make().encode(), max_pixels=640 * 360 - 1)


def test_message_with_a_jpeg_without_frame_header_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match="JPEG header"):
        frame.decode(make(jpeg=b"\xff\xd8\xff\xe0" + b"x" * 100).encode())

"""Read a JPEG's declared size from its header, without decoding it.

A decoder allocates the whole image the header declares before it reads any pixel data, so a
few hundred bytes declaring 32767x32767 cost gigabytes. Services call :func:`jpeg_size` (or
:func:`check_jpeg`) first and refuse an image that is larger than they allow or than its
message says. The walk follows the markers as libjpeg does: segment by segment by their
lengths, fill bytes (``FF FF ...``) allowed before a marker, up to the first SOFn segment.
Anything else (truncated, garbage where a marker belongs, a scan before the frame header, a
height of 0 left to a DNL marker, which libjpeg does not support) is :class:`InvalidMessage`.
"""

from __future__ import annotations

from .errors import InvalidMessage

#: Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
#: C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF})
#: Markers without a length field: TEM and RST0..RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
#: 8 Kpx x 4 Kpx (7680 x 4320 = 33.2 Mpx): the default pixel cap of decoded images.
DEFAULT_MAX_PIXELS = 7680 * 4320


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the first frame header; InvalidMessage if there is none."""
    if len(data) < 2 or data[0] != 0xFF or data[1] != _SOI:
        raise InvalidMessage("not a JPEG: no SOI marker")
    pos = 2
    end = len(data)
    while True:
        if pos >= end or data[pos] != 0xFF:
            raise InvalidMessage(f"JPEG header: no marker at byte {pos}")
        while pos < end and data[pos] == 0xFF:  # fill bytes before the marker code
            pos += 1
        if pos >= end:
            raise InvalidMessage("JPEG header truncated before its frame header")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (_SOI, _EOI, _SOS, 0x00):
            raise InvalidMessage(f"JPEG header: marker FF{marker:02X} before the frame header")
        if pos + 2 > end:
            raise InvalidMessage("JPEG header truncated in a segment length")
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > end:
            raise InvalidMessage(f"JPEG header: segment FF{marker:02X} of length {length} "
                                 "does not fit")
        if marker in _SOF:
            if length < 8:
                raise InvalidMessage("JPEG frame header too short")
            height = (data[pos + 3] << 8) | data[pos + 4]
            width = (data[pos + 5] << 8) | data[pos + 6]
            if width == 0 or height == 0:
                raise InvalidMessage(f"JPEG declares an empty image ({width}x{height})")
            return width, height
        pos += length


def check_jpeg(data: bytes, max_pixels: int, expect: tuple[int, int] | None = None
               ) -> tuple[int, int]:
    """The JPEG's ``(width, height)``, after refusing (InvalidMessage) an image of more than
    ``max_pixels`` or, given ``expect``, of another size than that."""
    width, height = jpeg_size(data)
    if expect is not None and (width, height) != expect:
        raise InvalidMessage(f"JPEG is {width}x{height} but the message says "
                             f"{expect[0]}x{expect[1]}")
    check_pixels(width, height, max_pixels, "JPEG")
    return width, height


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """InvalidMessage naming ``what`` if ``width`` x ``height`` exceeds ``max_pixels``."""
    if width * height > max_pixels:
        raise InvalidMessage(f"{what} of {width}x{height} exceeds the {max_pixels} pixel limit "
                             "(EI_MAX_PIXELS)")


#: How far into a file its JPEG frame header is looked for (APPn segments are <= 64 KiB each).
HEADER_SCAN_BYTES = 1 << 20


def check_jpeg_file(path: str, max_pixels: int) -> None:
    """Refuse a JPEG file declaring more than ``max_pixels`` before a decoder opens it; a file
    that is not a JPEG is left to the caller's other checks."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_SCAN_BYTES)
    except OSError as exc:
        raise InvalidMessage(f"cannot read the source: {exc.strerror}") from exc
    if head.startswith(b"\xff\xd8"):
        check_jpeg(head, max_pixels)

"""Is a byte string UTF-8 text? One answer for dataset files and config files alike."""

from __future__ import annotations

SNIFF_BYTES = 8192


def encoding_problem(data: bytes) -> str | None:
    """Why `data` is not UTF-8 text as a whole (a UTF-16/32 byte-order mark, NUL bytes), or None.

    Invalid UTF-8 bytes in places are found by `invalid_utf8` (dataset readers report them per line).
    """
    head = data[:SNIFF_BYTES]
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "the file is UTF-32 text, not UTF-8; save it as UTF-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file is UTF-16 text, not UTF-8; save it as UTF-8"
    if b"\x00" in head:
        return "the file holds binary data (NUL bytes), not UTF-8 text"
    return None


def decode_utf8(data: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, 'line N: why') for bytes that are not UTF-8; a UTF-8 BOM is dropped."""
    problem = encoding_problem(data)
    if problem is not None:
        return None, problem
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return None, f"line {line}: bytes that are not UTF-8 (0x{data[error.start]:02x})"

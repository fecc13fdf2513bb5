"""What an artifact's bytes are, judged from the bytes alone: skops, ONNX or pickle.

A manifest's ``format`` is a claim written by whoever made the bundle. The scanner and the
loader judge the content instead, so a pickle recorded as ``"onnx"`` is scanned as the
pickle it is, and no loader reads a file of another format than its own.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Content", "content_of", "sniff"]

Content = Literal["skops", "onnx", "pickle"]

_ZIP_MAGIC = b"PK\x03\x04"
# ModelProto's ir_version (field 1, a varint) and graph (field 7, a message).
_ONNX_REQUIRED = {(1, 0), (7, 2)}


def sniff(data: bytes | memoryview, *, parse_onnx: bool = True) -> Content:
    """``"skops"`` for a zip archive, ``"onnx"`` for an ONNX ModelProto, else ``"pickle"``.

    Anything else is a pickle, because the pickle scanner is the one that reads any byte
    stream (plain or compressed joblib included) without running it and reports what it
    cannot read. With ``parse_onnx`` (and onnx installed) an ONNX candidate is parsed as a
    ``ModelProto``; without, only its protobuf structure is checked, which needs no onnx
    (the loader uses this: onnxruntime parses the file next).
    """
    if bytes(data[:4]) == _ZIP_MAGIC:
        return "skops"
    if _is_onnx(data, parse=parse_onnx):
        return "onnx"
    return "pickle"


def content_of(format: str) -> Content | str:
    """The content a recorded format name stands for: ``"joblib:zlib"`` -> ``"pickle"``."""
    family = format.partition(":")[0]
    return "pickle" if family in ("pickle", "joblib") else family


def _is_onnx(data: bytes | memoryview, *, parse: bool) -> bool:
    fields = _protobuf_fields(memoryview(data))
    if fields is None or not fields >= _ONNX_REQUIRED:
        return False
    if not parse:
        return True
    try:
        import onnx
    except ImportError:
        return True
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except Exception:  # google.protobuf's DecodeError, or a RuntimeError from upb
        return False
    return model.ir_version > 0 and model.HasField("graph")


def _protobuf_fields(view: memoryview) -> set[tuple[int, int]] | None:
    """The (field number, wire type) pairs of a protobuf message; None if it is not one."""
    fields: set[tuple[int, int]] = set()
    position, end = 0, len(view)
    while position < end:
        key, position = _varint(view, position)
        if key is None or key >> 3 == 0:
            return None
        wire = key & 7
        if wire == 0:
            value, position = _varint(view, position)
            if value is None:
                return None
        elif wire == 1:
            position += 8
        elif wire == 2:
            length, position = _varint(view, position)
            if length is None:
                return None
            position += length
        elif wire == 5:
            position += 4
        else:  # groups (3, 4) are deprecated and ONNX has none; 6, 7 do not exist
            return None
        if position > end:
            return None
        fields.add((key >> 3, wire))
    return fields


def _varint(view: memoryview, position: int) -> tuple[int | None, int]:
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(view):
            return None, position
        byte = view[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    return None, position

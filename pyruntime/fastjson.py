"""JSON for the `state` verb without importing `json`.

`json` pulls in `re` and `enum`, which cost more than half of runc's whole `pyruntime
state` budget.  The C accelerator `_json` that `json` itself uses needs neither: its scanner
parses, and its string escaper quotes.  `loads` and `dumps` here accept and produce the
same documents as `json.loads` and `json.dumps(..., indent=2)`; tests compare them.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Context:
    # the attributes _json.make_scanner reads from a json.JSONDecoder
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed JSONDecoder
_WS = " \t\n\r"


class DecodeError(ValueError):
    pass


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
        if not text[end:].strip(_WS):
            return value
    except Exception:  # noqa: BLE001 - _json reports errors through json.decoder
        pass
    # Bad input is rare: let the json module find and word the error.
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DecodeError(str(e)) from None


def dumps(value: Any, indent: int | None = None, separators: tuple[str, str] | None = None) -> str:
    """Compact by default (json's separators=(",", ":")); `separators` as json's."""
    if separators is None:
        separators = (",", ":") if indent is None else (",", ": ")
    parts: list[str] = []
    _encode(value, parts, indent, 0, separators)
    return "".join(parts)


def _encode(v: Any, out: list[str], indent: int | None, level: int,
            seps: tuple[str, str]) -> None:
    if isinstance(v, str):
        out.append(_json.encode_basestring_ascii(v))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        out.append(float.__repr__(v))
    elif isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        sep, close = _separators(indent, level)
        out.append("{" + sep)
        for i, (k, item) in enumerate(v.items()):
            if i:
                out.append(seps[0] + sep)
            out.append(_json.encode_basestring_ascii(str(k)) + seps[1])
            _encode(item, out, indent, level + 1, seps)
        out.append(close + "}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        sep, close = _separators(indent, level)
        out.append("[" + sep)
        for i, item in enumerate(v):
            if i:
                out.append(seps[0] + sep)
            _encode(item, out, indent, level + 1, seps)
        out.append(close + "]")
    else:
        raise TypeError(f"not JSON serializable: {type(v).__name__}")


def _separators(indent: int | None, level: int) -> tuple[str, str]:
    if indent is None:
        return "", ""
    return "\n" + " " * (indent * (level + 1)), "\n" + " " * (indent * level)

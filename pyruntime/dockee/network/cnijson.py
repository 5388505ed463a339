"""JSON for the plugin's start-up: the stdlib's C scanner and string encoder without the json package.

`import json` loads json.decoder, which compiles regular expressions: `re`, `enum`, `functools` and
`collections` come with it, a good part of a DEL's whole cost.  The C accelerator (_json) that
json itself uses does the real work; this module gives it the little context it asks for.  Errors
are ValueError (json.JSONDecodeError, a subclass, where the C scanner raises it).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Context:
    # the attributes _json.make_scanner reads (json.decoder.JSONDecoder's defaults)
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder; any object with its attributes does
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes) -> Any:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    text = text.strip(_WHITESPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration as e:
        raise ValueError(f"not JSON: unexpected input at character {e.value}") from None
    if end != len(text):
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def dumps(value: Any) -> str:
    """json.dumps(value) for what CNI documents hold (dict, list, tuple, str, int, float, bool, None)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} is not JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys are strings, not {type(k).__name__}")
            out.append(", " if i else "")
            out.append(_json.encode_basestring_ascii(k))
            out.append(": ")
            _encode(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            out.append(", " if i else "")
            _encode(v, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

"""A small, fast JSON Schema (draft-07 subset) checker for the schemas in oci-schemas/.

Every `create` validates a config.json that is new each time (containerd and podman write
unique ids, paths and cgroupsPath), so a cache of passed documents rarely hits, and
jsonschema costs ~120 ms just to import.  This module answers only "valid or not", in a
millisecond or two, for the keywords our schemas use.  When it says "not valid", the caller
asks jsonschema for the best error message: failures are rare and may be slow.

It must never be more lenient than jsonschema on our schemas; tests/test_validate.py runs
both over the whole corpus of valid and invalid configs.
"""

from __future__ import annotations

import os

from .fastjson import loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = frozenset({
    "$schema", "$id", "$comment", "$ref", "title", "description", "definitions", "default",
    "examples", "type", "properties", "required", "items", "enum", "const", "minimum",
    "maximum", "minLength", "maxLength", "pattern", "additionalProperties", "propertyNames",
    "minItems", "maxItems", "allOf", "anyOf", "oneOf", "if", "then", "else", "uniqueItems",
})


class Unsupported(Exception):
    """The schema uses a keyword this checker does not implement."""


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    raise Unsupported(f"type {kind}")


def _equal(a: Any, b: Any) -> bool:
    # JSON has no 1 == true: booleans equal only booleans
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


class SchemaSet:
    """The schema files of one directory, referring to each other by file name."""

    def __init__(self, directory: str) -> None:
        self.docs: dict[str, Any] = {}
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json"):
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    self.docs[name] = loads(f.read())
        self._patterns: dict[str, Any] = dict(_KNOWN_PATTERNS)
        self._resolved: dict[tuple[str, str], tuple[Any, str]] = {}

    def resolve(self, ref: str, base: str) -> tuple[Any, str]:
        key = (ref, base)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(ref, base)
        return found

    def _resolve(self, ref: str, base: str) -> tuple[Any, str]:
        file, _, pointer = ref.partition("#")
        doc_name = file or base
        node = self.docs[doc_name]
        for part in pointer.split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, doc_name

    def is_valid(self, ref: str, instance: Any) -> bool:
        schema, base = self.resolve(ref, "")
        return self._ok(schema, base, instance)

    def _ok(self, s: Any, base: str, v: Any) -> bool:  # noqa: C901 - one branch per keyword
        if s is True or s == {}:
            return True
        if s is False:
            return False
        if "$ref" in s:
            target, tbase = self.resolve(s["$ref"], base)
            # draft-07: siblings of $ref are ignored
            return self._ok(target, tbase, v)
        if not SUPPORTED.issuperset(s):
            raise Unsupported(next(k for k in s if k not in SUPPORTED))
        t = s.get("type")
        if t is not None:
            if isinstance(t, list):
                if not any(_is_type(v, k) for k in t):
                    return False
            elif not _is_type(v, t):
                return False
        if "enum" in s:
            # a string equals only a string, so `in` is exact for one (and C-fast)
            if isinstance(v, str):
                if v not in s["enum"]:
                    return False
            elif not any(_equal(v, e) for e in s["enum"]):
                return False
        if "const" in s and not _equal(v, s["const"]):
            return False
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in s and v < s["minimum"]:
                return False
            if "maximum" in s and v > s["maximum"]:
                return False
        if isinstance(v, str):
            if "minLength" in s and len(v) < s["minLength"]:
                return False
            if "maxLength" in s and len(v) > s["maxLength"]:
                return False
            if "pattern" in s and not self._pattern(s["pattern"]).search(v):
                return False
        if isinstance(v, dict):
            for name in s.get("required", ()):
                if name not in v:
                    return False
            props = s.get("properties", {})
            extra = s.get("additionalProperties", True)
            names = s.get("propertyNames")
            for k, item in v.items():
                if k in props:
                    if not self._ok(props[k], base, item):
                        return False
                elif extra is not True and not self._ok(extra, base, item):
                    return False
                if names is not None and not self._ok(names, base, k):
                    return False
        if isinstance(v, list):
            if "minItems" in s and len(v) < s["minItems"]:
                return False
            if "maxItems" in s and len(v) > s["maxItems"]:
                return False
            items = s.get("items")
            if isinstance(items, list):
                raise Unsupported("items as a list")
            if items is not None and not all(self._ok(items, base, x) for x in v):
                return False
            if s.get("uniqueItems") and not _unique(v):
                return False
        if "allOf" in s and not all(self._ok(sub, base, v) for sub in s["allOf"]):
            return False
        if "anyOf" in s and not any(self._ok(sub, base, v) for sub in s["anyOf"]):
            return False
        if "oneOf" in s and sum(1 for sub in s["oneOf"] if self._ok(sub, base, v)) != 1:
            return False
        if "if" in s:
            branch = s.get("then") if self._ok(s["if"], base, v) else s.get("else")
            if branch is not None and not self._ok(branch, base, v):
                return False
        return True

    def _pattern(self, pattern: str) -> Any:
        compiled = self._patterns.get(pattern)
        if compiled is None:
            import re  # a pattern not in _KNOWN_PATTERNS: re costs ~10 ms to import

            compiled = self._patterns[pattern] = re.compile(pattern)
        return compiled


def _unique(items: list[Any]) -> bool:
    import json  # no schema of ours uses uniqueItems today

    return len({json.dumps(x, sort_keys=True) for x in items}) == len(items)


# The patterns of our schemas, as plain string checks: `re` alone costs more than the whole
# validation of a config.  Each behaves as re.search(pattern, v), `$` included (it also
# matches before one final newline); tests compare them with `re` on tricky strings.
_DIGITS = frozenset("0123456789")
_SEMVER_IDENT = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def _before_dollar(v: str) -> str:
    return v[:-1] if v.endswith("\n") else v


def _semver(v: str) -> bool:
    v = _before_dollar(v)
    core, plus, build = v.partition("+")
    if plus and not (build and _SEMVER_IDENT.issuperset(build)):
        return False
    core, dash, pre = core.partition("-")
    if dash and not (pre and _SEMVER_IDENT.issuperset(pre)):
        return False
    numbers = core.split(".")
    return len(numbers) == 3 and all(
        n and _DIGITS.issuperset(n) and (n == "0" or n[0] != "0") for n in numbers)


_CPU_LIST = frozenset("0123456789, -")


def _page_size(v: str) -> bool:
    v = _before_dollar(v)
    return (len(v) >= 3 and v[0] in "123456789" and _DIGITS.issuperset(v[1:-2])
            and v[-2] in "KMG" and v[-1] == "B")


class _Check:
    __slots__ = ("search",)

    def __init__(self, search: Any) -> None:
        self.search = search


_KNOWN_PATTERNS = {
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$":
        _Check(_semver),
    "^[0-9, -]*$": _Check(lambda v: _CPU_LIST.issuperset(_before_dollar(v))),
    "^[1-9][0-9]*[KMG]B$": _Check(_page_size),
    "^MB:[^\\n]*$": _Check(lambda v: v.startswith("MB:") and "\n" not in _before_dollar(v)[3:]),
    "^/": _Check(lambda v: v.startswith("/")),
}

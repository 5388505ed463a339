"""Records with dataclass semantics, minus dataclasses' cost at import time.

`dataclasses.dataclass` generates and exec()s source for every class; with the ~40
record classes the runtime defines, that alone was ~40 ms of every `create`, more than
runc's whole `run`.  This decorator builds the same behaviour (keyword/positional init,
defaults and default factories, repr, eq, hash, frozen) from shared closures instead.
`typing.dataclass_transform` tells type checkers to treat it exactly like a dataclass.
"""

from __future__ import annotations

# typing costs milliseconds to import, and `pyruntime state` must start fast: the names
# below matter only to type checkers, which treat any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, dataclass_transform
else:
    def dataclass_transform(**_kwargs: object) -> object:
        return lambda f: f

_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    pass


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] = _MISSING) -> Any:
    return _Field(default, default_factory)


def fields(obj_or_cls: Any) -> tuple[str, ...]:
    return tuple(obj_or_cls.__record_fields__)


def asdict(obj: Any) -> dict[str, Any]:
    """A deep copy into plain dicts/lists, like dataclasses.asdict."""
    return {name: _plain(getattr(obj, name)) for name in obj.__record_fields__}


def _plain(v: Any) -> Any:
    if hasattr(v, "__record_fields__"):
        return asdict(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _build(cls: type, frozen: bool) -> type:
    names: list[str] = []
    defaults: dict[str, _Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for name in getattr(base, "__record_fields__", ()):
            if name not in names:
                names.append(name)
        defaults.update(getattr(base, "__record_defaults__", {}))
    for name, ann in cls.__dict__.get("__annotations__", {}).items():
        if "ClassVar" in str(ann):
            continue
        if name not in names:
            names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            defaults[name] = value
            if value.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value.default)
        elif value is not _MISSING:
            defaults[name] = _Field(default=value)
    order = tuple(names)
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(order):
            raise TypeError(f"{cls.__name__}() takes {len(order)} positional arguments")
        for i, name in enumerate(order):
            if i < len(args):
                value = args[i]
                if name in kwargs:
                    raise TypeError(f"{cls.__name__}() got multiple values for {name!r}")
            elif name in kwargs:
                value = kwargs.pop(name)
            else:
                d = defaults.get(name)
                if d is None:
                    raise TypeError(f"{cls.__name__}() missing required argument {name!r}")
                value = d.default_factory() if d.default is _MISSING else d.default
            setter(self, name, value)
        if len(kwargs) > sum(1 for n in order[len(args):] if n in kwargs):
            extra = sorted(set(kwargs) - set(order))
            raise TypeError(f"{cls.__name__}() got unexpected arguments {extra}")

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in order)
        return f"{cls.__name__}({inner})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in order)

    cls.__record_fields__ = order  # type: ignore[attr-defined]
    cls.__record_defaults__ = defaults  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
    cls.__repr__ = __repr__  # type: ignore[assignment,method-assign]
    cls.__eq__ = __eq__  # type: ignore[assignment,method-assign]
    if frozen:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in order))

        cls.__setattr__ = __setattr__  # type: ignore[assignment,method-assign]
        cls.__delattr__ = __delattr__  # type: ignore[assignment,method-assign]
        cls.__hash__ = __hash__  # type: ignore[assignment,method-assign]
    else:
        cls.__hash__ = None  # type: ignore[assignment]
    return cls


@dataclass_transform(field_specifiers=(field,))
def dataclass(cls: Any = None, /, *, frozen: bool = False, **_ignored: Any) -> Any:
    """Drop-in for @dataclass / @dataclass(frozen=True)."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)

"""Immutable value records on __slots__: what typing.NamedTuple gave the model (construction by
position or keyword, defaults, equality, hash, repr, _replace, _asdict) without importing
typing, which costs milliseconds on every CNI start. mypy reads a Record as a frozen dataclass.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
else:
    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


@dataclass_transform(frozen_default=True)
class _RecordMeta(type):
    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> _RecordMeta:
        if not bases:  # Record itself
            return super().__new__(mcls, name, bases, ns)
        inherited: tuple[str, ...] = ()
        for base in bases:
            inherited += getattr(base, "_fields", ())
        own = tuple(f for f in ns.get("__annotations__", {}) if f not in inherited)
        defaults = {f: ns.pop(f) for f in own if f in ns}
        fields = inherited + own
        ns["__slots__"] = own
        ns["_fields"] = ns["__match_args__"] = fields
        ns["_defaults"] = {
            **{f: d for base in bases for f, d in getattr(base, "_defaults", {}).items()},
            **defaults}
        return super().__new__(mcls, name, bases, ns)


class Record(metaclass=_RecordMeta):
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    # One __init__ for every record, binding arguments as a generated signature would, with
    # the same TypeErrors. Generating one per class (as dataclasses do) compiled source at
    # import: 3 ms of every CNI start for its 23 record classes.
    def __init__(self, *args: object, **kwargs: object) -> None:
        fields, given = self._fields, len(args)
        if given > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional "
                            f"arguments but {given} were given")
        put = object.__setattr__
        for field, value in zip(fields, args, strict=False):
            put(self, field, value)
        rest = fields[given:]
        if not (rest or kwargs):
            return
        defaults, missing = self._defaults, []
        for field in rest:
            if field in kwargs:
                put(self, field, kwargs.pop(field))
            elif field in defaults:
                put(self, field, defaults[field])
            else:
                missing.append(field)
        for key in kwargs:
            how = "multiple values for argument" if key in fields else \
                "an unexpected keyword argument"
            raise TypeError(f"{type(self).__name__}() got {how} {key!r}")
        if missing:
            raise TypeError(f"{type(self).__name__}() missing required arguments: "
                            + ", ".join(map(repr, missing)))

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __iter__(self) -> Iterator[Any]:  # unpacking, as a NamedTuple's: `ok, why = avail`
        return iter(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    # Ordered as tuples of their fields, as NamedTuples were: lists of records sort.
    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() < other._values()

    def __le__(self, other: object) -> bool:
        return self == other or self < other

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return other < self

    def __ge__(self, other: object) -> bool:
        return self == other or self > other

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: use _replace")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._values())

    def _replace(self: R, **changes: object) -> R:
        return type(self)(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._fields}

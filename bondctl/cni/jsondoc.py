"""JSON from outside (the network configuration, prevResult, IPAM's answers), read the way Go's
encoding/json reads it for the reference plugins, so one document means one thing to both.

Go matches an object key to a struct field exactly or case-folded, and each key, in document
order, overwrites the field it matches: the last of "mode", "Mode" and "mode" wins. Python's
dict keeps the first position of a repeated key, so objects are built with every key at its
last occurrence; `fields` then folds in order and the last key wins, as in Go.
"""

from __future__ import annotations

import _json

from .errors import DECODE_FAILURE, CniError

TYPE_CHECKING = False  # typing (and collections) cost milliseconds to import, per pod start
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# Far beyond any CNI document, far below Python's recursion limit: whatever reaches copy,
# repr or the (recursive) pretty-printer of the result cannot blow the stack.
MAX_DEPTH = 64
# Go (1.21+) folds a key rune by rune as upper(lower(r)): these four non-ASCII runes fold to an
# ASCII letter. The Kelvin sign is the fourth; str.lower() already makes it "k".
_GO_FOLD = str.maketrans({"\u017f": "s", "\u0131": "i", "\u0130": "i"})  # long s, dotless i, İ


def fold(key: str) -> str:
    """The form a key is matched by (lower case, as Go folds it)."""
    return key.lower() if key.isascii() else key.translate(_GO_FOLD).lower()


def fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object's values by folded key; of keys that fold alike, the last one wins."""
    return {fold(key): value for key, value in obj.items()}


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj  # no repeated key: the common case, at C speed
    obj = {}
    for key, value in pairs:
        obj.pop(key, None)  # a repeated key moves to its last position
        obj[key] = value
    return obj


def loads(raw: bytes, what: str) -> Any:
    """Decoded JSON, objects keyed in last-occurrence order, at most MAX_DEPTH deep; anything
    else is CniError code 6 naming `what`."""
    try:
        obj = decode(raw, _last_wins)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(DECODE_FAILURE, f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        obj = None
    else:
        # Depth cannot exceed the number of brackets: only a document with many looks deeper.
        if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH or depth(obj) <= MAX_DEPTH:
            return obj
    raise CniError(DECODE_FAILURE, f"{what} is nested too deeply (more than {MAX_DEPTH} "
                   "levels)")


def depth(obj: object) -> int:
    """How deep lists and objects nest in `obj` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in value)
    return deepest


# -- JSON without the json package ---------------------------------------------------------------
# `import json` costs ~10 ms CPU on every plugin start: json.decoder imports re, and re imports
# enum and builds its tables. The C half of json (_json, what json.loads and json.dumps run
# anyway) needs none of that. Anything the fast paths below do not handle exactly as the json
# package would (an error to report, a BOM or UTF-16/32 input, keys that are not strings, a value
# of another type) is handed to the json package itself, so results and error messages are its.
_WS = " \t\n\r"  # json.decoder.WHITESPACE


class _Decoding:
    """What _json.make_scanner reads of a json.JSONDecoder."""

    __slots__ = ("object_hook", "object_pairs_hook", "parse_constant", "parse_float",
                 "parse_int", "strict")

    def __init__(self, object_pairs_hook: Any) -> None:
        self.object_hook = None
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                               "NaN": float("nan")}.__getitem__
        self.strict = True


_scanners: dict[object, Any] = {}


def decode(raw: bytes | str, object_pairs_hook: Any = None) -> Any:
    """json.loads(raw, object_pairs_hook=...), exceptions included."""
    scan = _scanners.get(object_pairs_hook)
    if scan is None:
        scan = _scanners[object_pairs_hook] = _json.make_scanner(
            _Decoding(object_pairs_hook))  # type: ignore[arg-type]  # reads these attributes
    text = None
    if isinstance(raw, bytes) and raw[:1] not in (b"\xef", b"\xfe", b"\xff", b"\x00") \
            and raw[1:2] != b"\x00":
        try:  # noqa: SIM105  # contextlib.suppress: 3 ms of imports (collections, functools)
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            pass
    if text is not None:
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = scan(text, start)
        except (StopIteration, SystemError):  # SystemError: _json reports errors through
            pass  # json.decoder, which it does not import itself
        else:
            if not text[end:].strip(_WS):
                return obj
    import json  # the error (or the unusual input) as json reports it

    return json.loads(raw, object_pairs_hook=object_pairs_hook)


_ENCODE_STR = _json.encode_basestring_ascii


def _fail(obj: object) -> Any:
    raise _Unusual


class _Unusual(Exception):
    pass


_scalar = _json.make_encoder(None, _fail, _ENCODE_STR, None, ": ", ", ", False, False, True)


def dumps(obj: object, *, sort_keys: bool = False) -> str:
    """json.dumps(obj, sort_keys=sort_keys)."""
    # A fresh markers dict per call, as json's: how it tells a cycle from a repeated value.
    encode = _json.make_encoder({}, _fail, _ENCODE_STR, None, ": ", ", ", sort_keys, False,
                                True)
    try:
        return "".join(encode(obj, 0))
    except _Unusual:
        import json

        return json.dumps(obj, sort_keys=sort_keys)


def pretty(obj: object) -> str:
    """json.dumps(obj, indent=4), which json runs in pure Python (milliseconds for a result)."""
    out: list[str] = []
    try:
        _pretty(obj, "\n", out)
    except (_Unusual, RecursionError):
        import json

        return json.dumps(obj, indent=4)
    return "".join(out)


def _pretty(obj: object, newline: str, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_ENCODE_STR(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = newline + "    "
        sep = "{" + inner
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _Unusual
            out.append(sep)
            out.append(_ENCODE_STR(key))
            out.append(": ")
            _pretty(value, inner, out)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(obj, list | tuple):
        if not obj:
            out.append("[]")
            return
        inner = newline + "    "
        sep = "[" + inner
        for value in obj:
            out.append(sep)
            _pretty(value, inner, out)
            sep = "," + inner
        out.append(newline + "]")
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif type(obj) is int:
        out.append(int.__repr__(obj))
    else:  # floats, int subclasses, anything else: as json writes them, or its error
        out.append("".join(_scalar(obj, 0)))

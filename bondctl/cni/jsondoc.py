"""JSON from outside (the network configuration, prevResult, IPAM's answers), read the way Go's
encoding/json reads it for the reference plugins, so one document means one thing to both.

Go matches an object key to a struct field exactly or case-folded, and each key, in document
order, overwrites the field it matches: the last of "mode", "Mode" and "mode" wins. Python's
dict keeps the first position of a repeated key, so objects are built with every key at its
last occurrence; `fields` then folds in order and the last key wins, as in Go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import DECODE_FAILURE, CniError

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
        obj = json.loads(raw, object_pairs_hook=_last_wins)
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

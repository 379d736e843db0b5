"""bondctl.cni.jsondoc's JSON without the json package: what json.loads and json.dumps give,
results and errors alike, including in a process that never imported json."""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys

import pytest

from bondctl.cni.jsondoc import _last_wins, decode, dumps, pretty


def outcome(fn: object, *args: object) -> tuple[str, str]:
    try:
        return "ok", repr(fn(*args))  # type: ignore[operator]
    except Exception as exc:  # the error is part of what must match
        return type(exc).__name__, str(exc)


RAW = [b'{"a":1}', b' {"a": [1, 2.5, -0.0, 1e400, true, null, "x\\u00e9"]} \n', b"", b"  ",
       b"{", b'{"a":1} x', b'\xef\xbb\xbf{"a":1}', '{"a":1}'.encode("utf-16"), b"[1,]",
       b'{"a": NaN, "b": -Infinity}', b'"\xff"', b'{"a":1, "a":2, "A":3}', b"\x00", b"1",
       b'{"a":"\\ud800"}', b"[" * 3000 + b"]" * 3000, b'{"k": "\x01"}', b"nul", b'{"a" 1}']


@pytest.mark.parametrize("raw", RAW)
def test_decode_is_json_loads(raw: bytes) -> None:
    for hook in (None, _last_wins):
        assert outcome(decode, raw, hook) == outcome(
            functools.partial(json.loads, object_pairs_hook=hook), raw)


class Other:
    pass


def test_dumps_and_pretty_are_json_dumps() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    shared = [1]
    objs: list[object] = [
        {"cniVersion": "1.0.0", "interfaces": [{"name": "bond0", "sandbox": "/x"}],
         "ips": [{"address": "10.0.0.2/24", "interface": 0, "gateway": None}], "dns": {},
         "t": (1, 2), "b": [True, False, None, 1.5, float("nan"), -3, 10**30, "é\u2028\"\\"]},
        {1: 2}, {"a": Other()}, Other(), [], {}, "s", 1.0, None, [[[]]], {None: 2}, cycle,
        [shared, shared]]
    rng = random.Random(1)

    def rnd(depth: int = 0) -> object:
        roll = rng.random()
        if depth > 4 or roll < 0.3:
            return rng.choice([None, True, False, 0, -1, 2**70, 1.25, "x", "é", "", 'a"b'])
        if roll < 0.65:
            return [rnd(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["a", "b", "é", "", "k\n"]): rnd(depth + 1)
                for _ in range(rng.randint(0, 4))}

    objs += [rnd() for _ in range(500)]
    for obj in objs:
        assert outcome(dumps, obj) == outcome(json.dumps, obj)
        assert outcome(pretty, obj) == outcome(lambda o: json.dumps(o, indent=4), obj)


def test_errors_without_json_imported() -> None:
    """_json reports a syntax error through json.decoder, which it does not import."""
    code = ("import sys\nfrom bondctl.cni.jsondoc import decode\n"
            "assert 'json' not in sys.modules\n"
            "try:\n    decode(b'{')\nexcept ValueError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ("Expecting property name enclosed in double quotes: "
                                   "line 1 column 2 (char 1)")

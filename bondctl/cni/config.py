"""The network configuration on stdin, parsed into a NetConf.

Keys match case-insensitively and the last of duplicate keys wins, as Go's encoding/json reads
them for bond-cni (see jsondoc); unknown keys are ignored, with a warning when one looks like a
misspelt bond option. Bond options are read
by their catalogue key (Option.cni_key): no option list lives here. Parsing keeps what DEL needs
lenient (a DEL follows even an ADD that failed on a bad value); `bond_spec` validates the rest.
"""

from __future__ import annotations

import os

from ..errors import ValidationError
from ..names import check_ifname
from ..options import (
    MODE,
    OPTIONS,
    SETTINGS,
    SLAVE_OPTIONS,
    check_mtu,
    lookup,
    near_miss,
    suggest,
)
from ..record import Record
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, CniError
from .jsondoc import dumps, fields, fold, loads
from .log import LEVELS
from .result import read_dns
from .versions import SUPPORTED_VERSIONS

DEFAULT_STATE_DIR = "/var/lib/cni/bond"
MIN_LINKS = 2  # bond-cni's rule: a bond of one link protects nothing
VALID_ATTACHMENTS = "cni.dev/valid-attachments"

_OPTION_KEYS = {opt.cni_key.lower(): opt.name for opt in SETTINGS.values()}
_SLAVE_KEYS = {
    key.lower(): opt.name for opt in SLAVE_OPTIONS.values() for key in (opt.cni_key, opt.name)
}
# The keys of the plugin and of the runtime, spelt as documented: a key one slip away from
# one of these (or from an option's key) is a typo to refuse, not someone else's key.
_SPELLINGS = (
    "cniVersion", "name", "type", MODE.cni_key, "links", "linksInContainer", "mtu", "ipam", "dns",
    "backend", "logFile", "logLevel", "stateDir", "prevResult", "runtimeConfig", "args",
    "capabilities", VALID_ATTACHMENTS, "ifname", "cniVersions", "allowAddressedLinks",
)
_KNOWN_KEYS = frozenset(key.lower() for key in _SPELLINGS)


TYPE_CHECKING = False  # typing (and collections) cost milliseconds to import, on every pod start
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class LinkConf(Record):
    name: str
    options: dict[str, object]  # per-slave options by catalogue name, raw


class NetConf(Record):
    cni_version: str
    name: str
    type: str
    mode: object  # raw; None when missing
    options: dict[str, tuple[str, object]]  # catalogue name -> (key as given, raw value)
    links: tuple[LinkConf, ...]
    links_raw: object  # as given, for the error messages of bond_spec
    links_in_container: bool
    mtu: object  # raw
    ipam: dict[str, Any] | None
    dns: dict[str, Any] | None
    prev_result: dict[str, Any] | None
    backend: str | None
    log_file: str | None
    log_level: str | None
    state_dir: str
    valid_attachments: tuple[tuple[str, str], ...] | None  # GC only
    raw: bytes  # exactly what came on stdin: delegated plugins get the same bytes
    warnings: tuple[str, ...]
    # A host link that carries addresses or routes is taken only when this is true.
    allow_addressed_links: bool = False
    typos: tuple[tuple[str, str], ...] = ()  # (key, why): near misses refused by bond_spec

    @property
    def ipam_type(self) -> str | None:
        return str(self.ipam["type"]) if self.ipam else None


def _error(field: str, msg: str) -> CniError:
    return CniError(INVALID_CONFIG, f"{field}: {msg}")


def _optional_str(keys: Mapping[str, Any], key: str, field: str) -> str | None:
    value = keys.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _error(field, f"expected a string, got {dumps(value)}")
    return value


def _bool(keys: Mapping[str, Any], key: str, field: str) -> bool:
    value = keys.get(key)
    if value is None:
        return False  # null leaves a Go bool false, too
    if not isinstance(value, bool):
        raise _error(field, "expected true or false")
    return value


def _absolute(path: str | None, field: str) -> str | None:
    if path is not None and (not os.path.isabs(path) or "\0" in path):
        raise _error(field, f"{path!r} must be an absolute path")
    return path


def _object(keys: Mapping[str, Any], key: str, field: str) -> dict[str, Any] | None:
    value = keys.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _error(field, "expected a JSON object")
    return value


def decode(raw: bytes) -> dict[str, Any]:
    obj = loads(raw, "network configuration")
    if not isinstance(obj, dict):
        raise CniError(DECODE_FAILURE, "network configuration must be a JSON object")
    return obj


def check_version(version: object) -> str:
    if not isinstance(version, str) or not version:
        raise CniError(INCOMPATIBLE_VERSION, "cniVersion is missing; supported: "
                       + ", ".join(SUPPORTED_VERSIONS))
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {version!r} is not supported; "
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return version


def parse_config(raw: bytes) -> NetConf:
    """Decode and check what every command needs; bond options stay raw (see bond_spec)."""
    obj = decode(raw)
    keys = fields(obj)
    version = check_version(keys.get("cniversion"))
    name = keys.get("name")
    if not isinstance(name, str) or not name:
        raise _error("name", "the network name is required")
    warnings: list[str] = []
    typos: list[tuple[str, str]] = []
    options: dict[str, tuple[str, object]] = {}
    for key, value in obj.items():
        option = _OPTION_KEYS.get(fold(key))
        if option is not None:
            options[option] = (key, value)  # in document order: the last duplicate wins
        elif fold(key) not in _KNOWN_KEYS:
            close = near_miss(key, (*_SPELLINGS, *(opt.cni_key for opt in OPTIONS.values())))
            if close:
                typos.append((key, f"unknown key; did you mean {close!r}?"))
                continue
            close = suggest(key)
            if close:
                hint = lookup(close).cni_key
                warnings.append(f"unknown key {key!r} ignored; did you mean {hint!r}?")
    links_raw = keys.get("links")
    links_in_container = _bool(keys, "linksincontainer", "linksInContainer")
    ipam = _object(keys, "ipam", "ipam")
    if ipam is not None:
        ipam = _check_ipam(ipam)
    level = _optional_str(keys, "loglevel", "logLevel")
    if level is not None and level.lower() not in LEVELS:
        raise _error("logLevel", f"{level!r} is not one of {', '.join(LEVELS)}")
    return NetConf(
        cni_version=version,
        name=name,
        type=_optional_str(keys, "type", "type") or "bond",
        mode=keys.get(MODE.cni_key.lower()),
        options=options,
        links=_links(links_raw, warnings, typos),
        links_raw=links_raw,
        links_in_container=links_in_container,
        mtu=keys.get("mtu"),
        ipam=ipam,
        dns=_dns(keys.get("dns")),
        prev_result=_object(keys, "prevresult", "prevResult"),
        backend=_optional_str(keys, "backend", "backend"),
        log_file=_absolute(_optional_str(keys, "logfile", "logFile"), "logFile"),
        log_level=level,
        state_dir=_absolute(_optional_str(keys, "statedir", "stateDir"), "stateDir")
        or DEFAULT_STATE_DIR,
        valid_attachments=_attachments(keys.get(VALID_ATTACHMENTS)),
        raw=raw,
        warnings=tuple(warnings),
        allow_addressed_links=_bool(keys, "allowaddressedlinks", "allowAddressedLinks"),
        typos=tuple(typos),
    )


def _check_ipam(ipam: dict[str, Any]) -> dict[str, Any] | None:
    kind = fields(ipam).get("type")
    if kind in (None, ""):
        if ipam:
            raise _error("ipam.type", "required when ipam is given")
        return None  # "ipam": {} means none, as in bond-cni
    if not isinstance(kind, str):
        raise _error("ipam.type", "expected a string")
    if kind == "bond":
        raise _error("ipam.type", "bond is not an IPAM plugin")
    # The type names a file in a CNI_PATH directory: a plain file name only.
    if "/" in kind or kind in (".", "..") or "\0" in kind:
        raise _error("ipam.type", f"{kind!r} is not a plugin name")
    return {**ipam, "type": kind}


def _dns(raw: object) -> dict[str, Any] | None:
    """The config's dns, in the result's shape: checked here so it is safe to copy there."""
    return None if raw is None else read_dns(raw, "dns", INVALID_CONFIG)


def _links(raw: object, warnings: list[str],
           typos: list[tuple[str, str]]) -> tuple[LinkConf, ...]:
    """Link names as far as they can be read; bond_spec reports what is wrong with them."""
    if not isinstance(raw, list):
        return ()
    out: list[LinkConf] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        name = fields(item).get("name")
        if not isinstance(name, str):
            continue
        options: dict[str, object] = {}
        for key, value in item.items():
            if fold(key) == "name":
                continue
            option = _SLAVE_KEYS.get(fold(key))
            close = None if option else near_miss(key, ("name", *(
                o.cni_key for o in SLAVE_OPTIONS.values())))
            if close:
                typos.append((f"links[{name}].{key}", f"unknown key; did you mean {close!r}?"))
                continue
            if option is None:
                warnings.append(f"links[{name}]: unknown key {key!r} ignored (known: "
                                f"{', '.join(o.cni_key for o in SLAVE_OPTIONS.values())})")
                continue
            options[option] = value
        out.append(LinkConf(name, options))
    return tuple(out)


def _attachments(raw: object) -> tuple[tuple[str, str], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _error(VALID_ATTACHMENTS, "expected a list")
    out = []
    for item in raw:
        keys = fields(item) if isinstance(item, dict) else {}
        cid, ifname = keys.get("containerid"), keys.get("ifname")
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise _error(VALID_ATTACHMENTS, "each entry needs containerID and ifname strings")
        out.append((cid, ifname))
    return tuple(out)


def bond_spec(conf: NetConf, ifname: str) -> Any:
    """The BondSpec for ADD and CHECK: every value checked, errors naming the config key."""
    from ..model import BondSpec  # dataclasses: only when a bond is built or checked

    for key, why in conf.typos:  # here, not in parse_config: a DEL must get past them
        raise _error(key, why)
    if conf.mode is None or conf.mode == "":
        raise _error(MODE.cni_key, f"required; one of {', '.join(MODE.choices)}")
    if not isinstance(conf.links_raw, list):
        raise _error("links", 'required: a list of {"name": ...} objects')
    for index, item in enumerate(conf.links_raw):
        name = fields(item).get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise _error(f"links[{index}]", 'expected an object with a "name" string')
        _named("links[].name", check_ifname, name)
    if len(conf.links) < MIN_LINKS:
        raise _error("links", f"at least {MIN_LINKS} links are needed, got {len(conf.links)} "
                     "(bond-cni's rule, kept for compatibility)")
    options: dict[str, object] = {}
    for option, (key, value) in conf.options.items():
        try:
            options[option] = OPTIONS[option].parse(value)
        except ValidationError as exc:
            raise _error(key, exc.msg.removeprefix(f"{option}: ")) from None
    mtu = None if conf.mtu in (None, 0) else _named("mtu", check_mtu, conf.mtu)
    try:
        return BondSpec.build(
            ifname, _named(MODE.cni_key, MODE.parse, conf.mode), options,
            [link.name for link in conf.links], mtu=mtu,
            slave_options={link.name: link.options for link in conf.links if link.options},
        )
    except ValidationError as exc:
        raise CniError(INVALID_CONFIG, _with_cni_key(exc.msg)) from None


def _named(field: str, check: Any, value: object) -> Any:
    try:
        return check(value)
    except ValidationError as exc:
        msg = exc.msg.removeprefix(f"{field}: ")
        raise _error(field, msg) from None


def _with_cni_key(msg: str) -> str:
    """Catalogue messages name the kernel option; a CNI user wrote the camelCase key. The
    model's other messages (a slave listed twice, the bond among its slaves, a per-slave
    option outside its modes) are about the links."""
    for opt in OPTIONS.values():
        if msg.startswith((f"{opt.name} ", f"{opt.name}:")):
            return f"{opt.cni_key}: {msg}" if opt.cni_key != opt.name else msg
    if msg.startswith(("mtu:", *(f"{name}:" for name in SLAVE_OPTIONS))):
        return msg
    return f"links: {msg}"

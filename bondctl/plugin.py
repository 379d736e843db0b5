"""The public API for backends: everything a backend plugin imports from bondctl, in one place.

A third-party backend imports `bondctl.plugin` and nothing else of bondctl
(plugins/bondctl-pyroute2 is the worked example, docs/plugins.md the guide). The names in
`__all__` are kept stable; every other module of bondctl is internal and may move, as
bondctl.rtnl did into bondctl.netlink.

- the contract: Backend, Availability, StepError, and `hookimpl` to register a backend class
  from a `bondctl_register_backends` hook;
- the steps a backend carries out (CreateBond ... MoveLink; `describe` for messages);
- the model it reads back into (BondState, SlaveState, Link) and the namespace it works in
  (Netns, NETNS_RUN_DIR, enter_netns / open_netns: the one way into a namespace);
- the catalogue: OPTIONS / SLAVE_OPTIONS rows (kernel names, IFLA numbers and wire types,
  parse), the slave and 802.3ad info fields, mode numbers;
- the netlink codec helpers a backend that speaks netlink itself needs (decode, the socket
  protocol number, the attribute type mask, IFF_UP);
- errors to raise, name checks, and `kernel_can_bond()` for `availability()`.

Importing it costs what a built-in backend's imports cost (no pluggy: `hookimpl` is bondctl's
pluggy-free marker, bondctl.markers), so a plugin module stays cheap on the CNI's path.
"""

from __future__ import annotations

from .backend import Availability, Backend, StepError
from .errors import (
    BondctlError,
    KernelError,
    NotFoundError,
    UnsupportedError,
    ValidationError,
)
from .kernel import kernel_can_bond
from .markers import hookimpl
from .model import BondState, Link, SlaveState
from .names import check_ifname
from .netlink import IFF_UP, NETLINK_ROUTE, NLA_TYPE_MASK, decode, enter_netns, open_netns
from .netns import NETNS_RUN_DIR, Netns
from .options import (
    AD_INFO_FIELDS,
    IFLA_BOND_AD_INFO,
    MII_STATES,
    MODE,
    OPTIONS,
    SETTINGS,
    SLAVE_FIELDS,
    SLAVE_OPTIONS,
    SLAVE_STATES,
    Value,
    mode_number,
)
from .record import Record
from .steps import (
    CreateBond,
    DeleteLink,
    MoveLink,
    SetBond,
    SetLink,
    SetSlave,
    Step,
    describe,
)

__all__ = [
    "AD_INFO_FIELDS",
    "IFF_UP",
    "IFLA_BOND_AD_INFO",
    "MII_STATES",
    "MODE",
    "NETLINK_ROUTE",
    "NETNS_RUN_DIR",
    "NLA_TYPE_MASK",
    "OPTIONS",
    "SETTINGS",
    "SLAVE_FIELDS",
    "SLAVE_OPTIONS",
    "SLAVE_STATES",
    "Availability",
    "Backend",
    "BondState",
    "BondctlError",
    "CreateBond",
    "DeleteLink",
    "KernelError",
    "Link",
    "MoveLink",
    "Netns",
    "NotFoundError",
    "Record",
    "SetBond",
    "SetLink",
    "SetSlave",
    "SlaveState",
    "Step",
    "StepError",
    "UnsupportedError",
    "ValidationError",
    "Value",
    "check_ifname",
    "decode",
    "describe",
    "enter_netns",
    "hookimpl",
    "kernel_can_bond",
    "mode_number",
    "open_netns",
]

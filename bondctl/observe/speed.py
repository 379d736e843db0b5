"""A link's speed from the ethtool ioctl, asked on a socket that lives in the link's
namespace: sysfs only shows the namespace of whoever mounted /sys, so it cannot answer for a
pod's links, while SIOCETHTOOL on any socket of the namespace can."""

from __future__ import annotations

import ctypes
import fcntl
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_GSET = 0x00000001
# struct ethtool_cmd: cmd, supported, advertising, speed, duplex, port, phy_address,
# transceiver, autoneg, mdio_support, maxtxpkt, maxrxpkt, speed_hi, eth_tp_mdix,
# eth_tp_mdix_ctrl, lp_advertising, reserved[2]
_ETHTOOL_CMD = struct.Struct("=IIIHBBBBBBIIHBBI2I")
_IFREQ = struct.Struct("@16sP")  # ifr_name, then the union's ifr_data pointer (native)
_IFREQ_SIZE = 40
_SPEED_UNKNOWN = (0xFFFF, 0xFFFFFFFF, 0)


def speed_mbps(fd: int, ifname: str) -> int | None:
    """Mb/s the driver reports for `ifname` in the namespace of socket `fd`; None when it
    reports none (a dummy, a link without ethtool support, a NIC without a link)."""
    cmd = ctypes.create_string_buffer(_ETHTOOL_CMD.pack(ETHTOOL_GSET, *([0] * 17)),
                                      _ETHTOOL_CMD.size)
    ifreq = bytearray(_IFREQ_SIZE)
    _IFREQ.pack_into(ifreq, 0, ifname.encode()[:15], ctypes.addressof(cmd))
    try:
        fcntl.ioctl(fd, SIOCETHTOOL, ifreq)
    except OSError:
        return None
    fields = _ETHTOOL_CMD.unpack(cmd.raw)
    speed = fields[3] | (fields[12] << 16)
    return None if speed in _SPEED_UNKNOWN or fields[3] == 0xFFFF else speed


def speed_bytes(mbps: int | None) -> float | None:
    """node_exporter's unit for link speed: bytes per second."""
    return None if mbps is None else mbps * 1_000_000 / 8

"""The links of one network namespace, through the backend contract: the operations layer for
links as bondctl.ops.Bonds is for bonds.

Links are named by ifindex: a name is whatever the namespace's owner makes it, an index stays
with the device while it stays in the namespace. The kernel's refusals come out as OSError
(a NetlinkError), so callers word their own failures.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import, and the CNI imports this
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .backend import LinkContract, RouteHops
    from .model import Link as Link
    from .netns import Netns


def parse_address(text: str) -> tuple[int, bytes, int]:
    """'10.1.2.3/24', '2001:db8::1/64' or a bare address (a host prefix) as (4 or 6, address
    bytes, prefix length), checked as the contract checks an address it is given; ValueError
    otherwise."""
    from .netlink import AF_INET, parse_cidr

    family, raw, prefix = parse_cidr(text)
    return 4 if family == AF_INET else 6, raw, prefix


class Links:
    """`backend`: any Backend (or the bare LinkContract), or a function that gives the one to
    use at each call (the CNI's, whose backend is chosen only when the bond is made)."""

    def __init__(self, backend: LinkContract | Callable[[], LinkContract], netns: Netns
                 ) -> None:
        self._backend = backend
        self.netns = netns

    @property
    def backend(self) -> LinkContract:
        return self._backend() if callable(self._backend) else self._backend

    def all(self) -> list[Link]:
        return self.backend.link_records(self.netns)

    def get_link(self, link: int | str) -> Link | None:
        return self.backend.link_record(link, self.netns)

    def set_link(self, index: int, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, name: str | None = None,
                 master: int | None = None) -> None:
        self.backend.set_link(index, self.netns, up=up, mtu=mtu, mac=mac, name=name,
                              master=master)

    def move(self, index: int, target: Netns | int, name: str | None = None) -> None:
        self.backend.move_link(index, self.netns, target, name)

    def delete(self, index: int) -> None:
        self.backend.delete_link(index, self.netns)

    def addresses(self, index: int) -> list[str]:
        return self.backend.addresses(index, self.netns)

    def add_address(self, index: int, cidr: str, *, broadcast: str | None = None) -> None:
        self.backend.add_address(index, cidr, self.netns, broadcast=broadcast)

    def routes(self) -> list[RouteHops]:
        return self.backend.routes(self.netns)

    def add_route(self, dst: str, gateway: str | None, oif: int, *, table: int | None = None,
                  metric: int | None = None, protocol: int | None = None) -> None:
        self.backend.add_route(dst, gateway, oif, self.netns, table=table, metric=metric,
                               protocol=protocol)

    def delete_address(self, index: int, cidr: str) -> None:
        self.backend.delete_address(index, cidr, self.netns)

    def delete_route(self, dst: str, gateway: str | None, oif: int, *,
                     table: int | None = None, metric: int | None = None) -> None:
        self.backend.delete_route(dst, gateway, oif, self.netns, table=table, metric=metric)

    def add_vlan(self, name: str, lower: int, vlan_id: int, *, mtu: int | None = None) -> None:
        self.backend.add_vlan(name, lower, vlan_id, self.netns, mtu=mtu)

    def lower_is_local(self, index: int) -> bool:
        return self.backend.lower_is_local(index, self.netns)

    def survey(self, index: int, links: list[Link] | None = None) -> dict[str, Any]:
        """What the namespace loses when link `index` leaves it (bondctl.hostlinks); `links`:
        all of the namespace's, when the caller has just listed them."""
        from . import hostlinks

        links = self.all() if links is None else links
        link = next((x for x in links if x.index == index), None)
        if link is None:
            import errno

            raise OSError(errno.ENODEV, f"no link with index {index}")  # as the kernel says
        return hostlinks.survey(self, link, links)

    def restore(self, index: int, found: Mapping[str, Any]) -> list[str]:
        """Put back what survey() recorded on the link now at `index`; the failures."""
        from . import hostlinks

        return hostlinks.restore(self, index, found)

    def restore_attributes(self, now: Link, name: str, *, mtu: int | None, mac: str | None,
                           up: bool | None) -> None:
        """Give link `now` back its name, MTU, MAC and admin state (None: leave as it is)."""
        mtu = mtu if mtu not in (None, now.mtu) else None
        mac = mac if mac not in (None, now.mac) else None
        new_name = name if now.name != name else None
        down = now.up and bool(mac or new_name)
        if down:  # many drivers refuse a new MAC while up
            self.set_link(now.index, up=False)
        if mtu or mac or new_name:
            self.set_link(now.index, mtu=mtu, mac=mac, name=new_name)
        want_up = now.up if up is None else up
        if bool(want_up) != (now.up and not down):
            self.set_link(now.index, up=bool(want_up))

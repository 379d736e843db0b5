# ruff: noqa: F811  (the cni fixture is imported from test_cni_support)
"""The plugin's full lifecycle in the real kernel: standalone with real host-local IPAM,
rollback at every ADD step (failed and killed), DEL after the pod is gone, CHECK against
tampering, GC, STATUS, chaining, concurrency on host links, and bond-cni's README configs."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys

import pytest

from bondctl.cni.errors import STATE_DIFFERS
from bondctl.cni.plugin import ADD_STEPS
from bondctl.registry import Registry
from tests.kernel.test_cni_support import (  # noqa: F401
    CNI_BIN,
    PLUGIN,
    cni,
    host_links,
    link_facts,
    pod_links,
)


def mixed_host_links(cni, make_links):
    """Two host links that differ in MTU, MAC and admin state, all of which must come back."""
    links = host_links(cni, make_links, up=False, mtu=1450)
    cni.host.ip("link", "set", "dev", links[0], "up")
    cni.host.ip("link", "set", "dev", links[1], "mtu", "1480")
    return links


def addresses(ns, dev):
    data = ns.ip_json("addr", "show", "dev", dev)
    return [f"{a['local']}/{a['prefixlen']}" for a in data[0]["addr_info"] if a["scope"] != "link"]


def test_standalone_host_local_add_then_del(cni, make_links):
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True, mtu=1400)
    out = cni.ok("ADD", conf)
    (ip,) = out["ips"]
    assert addresses(cni.pod, "bond0") == [ip["address"]]
    routes = cni.pod.ip_json("route", "show", "default")
    assert routes[0]["gateway"] == "10.56.217.1" and routes[0]["dev"] == "bond0"
    assert cni.leases() == [ip["address"].split("/")[0]]
    assert len(cni.records()) == 1
    assert cni.bond()["mtu"] == 1400
    assert "UP" in cni.bond()["flags"]
    cni.ok("DEL", {**conf, "prevResult": out})
    cni.assert_nothing_left(before)


@pytest.mark.parametrize("step", ADD_STEPS)
def test_failure_after_each_add_step_leaves_nothing(cni, make_links, step):
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    call = cni.fails("ADD", cni.conf(links, ipam=True, mode="balance-tlb"),
                     env={"BONDCTL_FAULT": step})
    assert call.out["msg"] == f"injected fault after step {step}"
    assert call.code == 100
    cni.assert_nothing_left(before)


@pytest.mark.parametrize("step", ADD_STEPS)
def test_del_after_add_killed_at_each_step_leaves_nothing(cni, make_links, step):
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True)
    killed = cni.call("ADD", conf, env={"BONDCTL_FAULT_KILL": step})
    assert killed.rc != 0 and killed.out == {}
    assert len(cni.records()) == 1  # what DEL needs survived the crash
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before)


def test_failure_with_links_in_container_restores_them(cni, make_links):
    links = pod_links(cni, make_links)
    cni.pod.ip("link", "set", "dev", links[1], "up")
    before = cni.snapshot(cni.pod, links)
    cni.fails("ADD", cni.conf(links, ipam=True, linksInContainer=True, failOverMac=0),
              env={"BONDCTL_FAULT": "addresses"})
    cni.assert_nothing_left(before, in_pod=True)


def test_ipam_failure_rolls_back(cni, make_links):
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True)
    conf["ipam"]["subnet"] = "10.56.217.0/33"  # host-local refuses it
    call = cni.fails("ADD", conf)
    assert "host-local" in call.out["msg"]
    cni.assert_nothing_left(before)


@pytest.mark.parametrize("without_netns", [False, True])
def test_del_after_pod_netns_deleted(cni, make_links, without_netns):
    links = host_links(cni, make_links, prefix="d")
    conf = cni.conf(links, ipam=True)
    cni.ok("ADD", conf)
    pod_path = str(cni.pod.path)
    subprocess.run(["ip", "netns", "del", cni.pod.name], check=True)
    assert not os.path.exists(pod_path)
    cni.ok("DEL", conf, netns="" if without_netns else pod_path)
    assert cni.records() == [] and cni.leases() == []
    # The veths died with the pod; nothing of them may linger in the host either.
    assert all(cni.host.link(n) is None for n in links)
    cni.ok("DEL", conf, netns="")


def test_del_after_pod_deleted_restores_links_that_come_back(cni, make_links):
    """Physical links return to the host when their namespace dies; ours are dummies, which
    die instead, so put one back by hand and check DEL restores its recorded attributes."""
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links)
    cni.ok("ADD", conf)
    cni.pod.ip("link", "set", "dev", "bond0", "down")
    cni.pod.ip("link", "del", "bond0")
    cni.pod.ip("link", "set", "dev", links[0], "netns", cni.host.name)
    cni.ok("DEL", conf, netns="")
    assert link_facts(cni.host, links[0]) == before[links[0]]
    assert cni.records() == []


def test_check_passes_then_reports_tampering(cni, make_links):
    links = host_links(cni, make_links)
    conf = cni.conf(links, ipam=True, version="1.0.0")
    out = cni.ok("ADD", conf)
    checked = {**conf, "prevResult": out}
    cni.ok("CHECK", checked)

    cni.pod.ip("link", "set", "bond0", "type", "bond", "miimon", "300")
    call = cni.fails("CHECK", checked, code=STATE_DIFFERS)
    assert "miimon: want 100, have 300" in call.out["msg"]

    cni.pod.ip("link", "set", "bond0", "type", "bond", "miimon", "100")
    cni.ok("CHECK", checked)
    cni.pod.ip("link", "set", "dev", links[1], "nomaster")
    call = cni.fails("CHECK", checked, code=STATE_DIFFERS)
    assert "slaves" in call.out["msg"] and links[1] in call.out["msg"]

    cni.pod.ip("link", "set", "dev", links[1], "down")
    cni.pod.ip("link", "set", "dev", links[1], "master", "bond0")
    cni.ok("CHECK", checked)
    cni.pod.ip("addr", "flush", "dev", "bond0")
    call = cni.fails("CHECK", checked, code=STATE_DIFFERS)
    assert out["ips"][0]["address"] in call.out["msg"]
    cni.ok("DEL", checked)


def test_check_without_prev_result_and_on_old_versions(cni, make_links):
    links = pod_links(cni, make_links)
    conf = cni.conf(links, linksInContainer=True)
    cni.ok("ADD", conf)
    cni.fails("CHECK", conf, code=7)
    cni.fails("CHECK", {**conf, "cniVersion": "0.3.1"}, code=1)


FAKE_IPAM = """#!{python}
import json, os, sys
command = os.environ["CNI_COMMAND"]
stdin = sys.stdin.read()
with open(os.environ["FAKE_IPAM_LOG"], "a") as log:
    log.write(json.dumps({{"command": command, "stdin": stdin}}) + "\\n")
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]}}))
elif command == "STATUS" and os.environ.get("FAKE_IPAM_STATUS"):
    print(json.dumps({{"cniVersion": "1.1.0", "code": int(os.environ["FAKE_IPAM_STATUS"]),
                      "msg": "no addresses left"}}))
    sys.exit(1)
elif command == "ADD":
    print(json.dumps({{"cniVersion": "1.1.0", "ips": [{{"address": "10.9.0.5/24"}}]}}))
"""


@pytest.fixture
def fake_ipam(cni, tmp_path_factory):
    """A recording IPAM speaking CNI 1.1 (host-local 1.1.1 stops at 1.0.0): it shows what the
    plugin forwards. It lives on the guest's tmpfs, next to the state."""
    directory = cni.state_dir.parent / f"{cni.state_dir.name}-bin"
    directory.mkdir()
    script = directory / "fake-ipam"
    script.write_text(FAKE_IPAM.format(python=sys.executable))
    script.chmod(stat.S_IRWXU)
    log = directory / "calls.jsonl"
    cni.extra_env["FAKE_IPAM_LOG"] = str(log)

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    yield str(directory), calls
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


def test_status(cni, fake_ipam):
    directory, calls = fake_ipam
    conf = cni.conf([], version="1.1.0", ipam=False)
    conf["ipam"] = {"type": "fake-ipam"}
    cni.ok("STATUS", conf, path=directory, cid="", ifname="", netns="")
    assert [c["command"] for c in calls()] == ["VERSION", "STATUS"]
    call = cni.fails("STATUS", conf, path=directory, cid="", ifname="", netns="",
                     env={"FAKE_IPAM_STATUS": "51"})
    assert call.code == 51 and "no addresses left" in call.out["msg"]
    call = cni.fails("STATUS", conf, path=directory, cid="", ifname="", netns="",
                     env={"FAKE_IPAM_STATUS": "7"})
    assert call.code == 50
    # host-local 1.1.1 predates STATUS: the plugin does not forward it.
    cni.ok("STATUS", cni.conf([], ipam=True, version="1.1.0"), cid="", ifname="", netns="")


def test_gc_removes_what_is_not_valid(cni, make_links, make_netns, fake_ipam):
    directory, calls = fake_ipam
    links_a = host_links(cni, make_links, prefix="a")
    links_b = mixed_host_links(cni, make_links)
    before_b = cni.snapshot(cni.host, links_b)
    pod_b = make_netns("podb")
    conf_a = cni.conf(links_a, version="1.1.0")
    conf_a["ipam"] = {"type": "fake-ipam"}
    conf_b = {**conf_a, "links": [{"name": n} for n in links_b]}
    cni.ok("ADD", conf_a, cid="ctr-a", path=directory)
    cni.ok("ADD", conf_b, cid="ctr-b", netns=str(pod_b.path), path=directory)
    other = {**conf_a, "name": "othernet", "links": []}
    assert len(cni.records()) == 2

    valid = [{"containerID": "ctr-a", "ifname": "bond0"}]
    gc = {**other, "name": "bondnet", "cni.dev/valid-attachments": valid}
    cni.ok("GC", {**other, "cni.dev/valid-attachments": []}, cid="", ifname="", netns="",
           path=directory)
    assert len(cni.records()) == 2  # another network's GC leaves ours alone
    cni.ok("GC", gc, cid="", ifname="", netns="", path=directory)

    assert pod_b.link("bond0") is None
    assert cni.snapshot(cni.host, links_b) == before_b
    assert cni.records() == ["ctr-a@bond0.json"]
    assert cni.bond()["linkinfo"]["info_kind"] == "bond"
    forwarded = [c for c in calls() if c["command"] == "GC"]
    assert len(forwarded) == 2
    assert json.loads(forwarded[-1]["stdin"])["cni.dev/valid-attachments"] == valid


def test_tuning_chained_after_bond(cni, make_links):
    links = host_links(cni, make_links)
    conf = cni.conf(links, ipam=True, version="1.0.0")
    out = cni.ok("ADD", conf)
    tuning = {"cniVersion": "1.0.0", "name": "bondnet", "type": "tuning", "promisc": True,
              "prevResult": out}
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1",
           "CNI_NETNS": str(cni.pod.path), "CNI_IFNAME": "bond0", "CNI_PATH": CNI_BIN}
    proc = cni.host.run(f"{CNI_BIN}/tuning", input=json.dumps(tuning), env=env, check=False)
    assert proc.returncode == 0, proc.stdout
    final = json.loads(proc.stdout)
    assert cni.bond()["promiscuity"] >= 1
    assert final["interfaces"][0]["name"] == "bond0"
    cni.ok("CHECK", {**conf, "prevResult": final})
    cni.ok("DEL", {**conf, "prevResult": final})
    assert cni.records() == [] and cni.leases() == []


def test_bond_chained_after_another_plugin_merges_prev_result(cni, make_links):
    links = pod_links(cni, make_links)
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "x"}],
            "ips": [{"address": "192.0.2.2/24", "interface": 0}], "dns": {}}
    out = cni.ok("ADD", cni.conf(links, linksInContainer=True, ipam=True, prevResult=prev))
    assert [i["name"] for i in out["interfaces"]] == ["eth0", "bond0", *links]
    assert out["ips"][0] == prev["ips"][0]
    assert out["ips"][1]["interface"] == 1


def test_link_held_by_an_add_in_flight_answers_try_again(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    cni.state_dir.mkdir(mode=0o700)
    fd = os.open(cni.state_dir / f"+link@{links[1]}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        call = cni.fails("ADD", cni.conf(links, ipam=True), code=11)
        assert links[1] in call.out["msg"]
    finally:
        os.close(fd)
    cni.assert_nothing_left(before)


def test_link_already_taken_by_another_pod(cni, make_links, make_netns):
    links = host_links(cni, make_links)
    conf = cni.conf(links)
    cni.ok("ADD", conf, cid="first")
    second = make_netns("pod2")
    call = cni.fails("ADD", conf, cid="second", netns=str(second.path), code=101)
    assert "first/bond0" in call.out["msg"]
    assert second.link("bond0") is None
    assert len(cni.records()) == 1


def test_two_pods_race_for_the_same_links(cni, make_links, make_netns):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    pods = [cni.pod, make_netns("pod2")]
    conf = json.dumps(cni.conf(links))
    procs = []
    for i, pod in enumerate(pods):
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"racer{i}",
               "CNI_NETNS": str(pod.path), "CNI_IFNAME": "bond0", "CNI_PATH": CNI_BIN}
        procs.append(subprocess.Popen(["ip", "netns", "exec", cni.host.name, *PLUGIN],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, text=True))
    outs = [json.loads(p.communicate(conf)[0]) for p in procs]
    winners = [i for i, out in enumerate(outs) if "code" not in out]
    assert len(winners) == 1, outs
    loser = outs[1 - winners[0]]
    assert loser["code"] in (11, 101), loser
    assert pods[1 - winners[0]].link("bond0") is None
    assert {pods[winners[0]].link(n)["master"] for n in links} == {"bond0"}
    cni.ok("DEL", json.loads(conf), cid=f"racer{winners[0]}",
           netns=str(pods[winners[0]].path))
    assert cni.snapshot(cni.host, links) == before
    assert cni.records() == []


def test_validation_fails_before_any_change(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    cni.pod.ip("link", "add", links[0], "type", "dummy")  # a name clash in the pod
    call = cni.fails("ADD", cni.conf(links, ipam=True), code=7)
    assert links[0] in call.out["msg"]
    cni.pod.ip("link", "del", links[0])
    call = cni.fails("ADD", cni.conf([links[0], "nosuch0"], ipam=True), code=7)
    assert "nosuch0" in call.out["msg"]
    cni.pod.ip("link", "add", "bond0", "type", "dummy")
    cni.fails("ADD", cni.conf(links, ipam=True), code=7)
    cni.pod.ip("link", "del", "bond0")
    assert cni.snapshot(cni.host, links) == before
    assert cni.leases() == [] and cni.records() == []


def test_netns_that_is_not_a_namespace(cni, make_links):
    links = host_links(cni, make_links)
    cni.state_dir.mkdir(mode=0o700)
    plain = cni.state_dir / "not-a-netns"
    plain.write_text("")
    cni.fails("ADD", cni.conf(links), netns=str(plain), code=4)
    cni.fails("ADD", cni.conf(links), netns="/run/netns/does-not-exist", code=3)


@pytest.mark.parametrize("backend", sorted(Registry().backends()))
def test_each_backend_moves_links_in_and_back(cni, make_links, backend):
    links = mixed_host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = cni.conf(links, ipam=True, backend=backend)
    cni.ok("ADD", conf)
    assert {cni.pod.link(n)["master"] for n in links} == {"bond0"}
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before)


def test_802_3ad_with_lacp_rate_fast_and_per_link_options(cni, make_links):
    links = pod_links(cni, make_links)
    conf = cni.conf([], mode="802.3ad", lacpRate="fast", xmitHashPolicy="layer3+4",
                    linksInContainer=True, miimon=100, adSelect="bandwidth")
    conf["links"] = [{"name": links[0], "queueId": 1}, {"name": links[1], "queueId": 2}]
    cni.ok("ADD", conf)
    data = cni.bond()["linkinfo"]["info_data"]
    assert data["ad_lacp_rate"] == "fast"
    assert data["ad_select"] == "bandwidth"
    assert data["xmit_hash_policy"] == "layer3+4"
    for i, name in enumerate(links):
        assert cni.pod.link(name)["linkinfo"]["info_slave_data"]["queue_id"] == i + 1


def test_readme_multus_config_unchanged(cni, make_links):
    """bond-cni's README NetworkAttachmentDefinition, as is: default stateDir and dataDir
    (both on the guest's tmpfs)."""
    links = pod_links(cni, make_links)
    conf = {"type": "bond", "cniVersion": "0.3.1", "name": "bond-net1",
            "mode": "active-backup", "failOverMac": 1, "linksInContainer": True,
            "miimon": "100", "mtu": 1500, "links": [{"name": "net1"}, {"name": "net2"}],
            "ipam": {"type": "host-local", "subnet": "10.56.217.0/24",
                     "routes": [{"dst": "0.0.0.0/0"}], "gateway": "10.56.217.1"}}
    out = cni.ok("ADD", conf)
    assert out["ips"][0]["version"] == "4"
    assert cni.bond()["linkinfo"]["info_data"]["fail_over_mac"] == "active"
    cni.ok("DEL", {**conf, "prevResult": out})
    assert cni.pod.link("bond0") is None
    leases = "/var/lib/cni/networks/bond-net1"
    assert [n for n in os.listdir(leases) if n[0].isdigit()] == []
    assert [n for n in os.listdir("/var/lib/cni/bond") if n.endswith(".json")] == []
    assert links == ["net1", "net2"]


def test_readme_flannel_delegate_config_unchanged(cni):
    """The README's flannel delegate: flannel adds name and cniVersion around it."""
    cni.host.batch(["link add ens3f2 type dummy", "link add ens3f2d1 type dummy"])
    before = cni.snapshot(cni.host, ["ens3f2", "ens3f2d1"])
    delegate = {"type": "bond", "mode": "active-backup", "miimon": "100", "mtu": 1500,
                "failOverMac": 1, "links": [{"name": "ens3f2"}, {"name": "ens3f2d1"}]}
    conf = {"cniVersion": "0.3.1", "name": "mynet", **delegate}
    cni.ok("ADD", conf)
    assert {cni.pod.link(n)["master"] for n in before} == {"bond0"}
    cni.ok("DEL", conf)
    assert cni.snapshot(cni.host, list(before)) == before


def test_option_without_effect_in_the_mode_is_set_and_warned_about(cni, make_links):
    """The catalogue's rule, as in the CLI: the kernel keeps xmit_hash_policy in
    active-backup (it works if the mode changes), so it is set, never in silence."""
    links = host_links(cni, make_links)
    conf = cni.conf(links, xmitHashPolicy="layer3+4")
    call = cni.call("ADD", conf)
    assert call.rc == 0, call.out
    assert "xmit_hash_policy has no effect in mode active-backup" in call.stderr
    assert cni.bond()["linkinfo"]["info_data"]["xmit_hash_policy"] == "layer3+4"
    cni.ok("DEL", conf)


def test_near_miss_key_is_refused_before_any_change(cni, make_links):
    links = host_links(cni, make_links)
    before = cni.snapshot(cni.host, links)
    conf = {**cni.conf(links), "miimom": "100"}
    call = cni.fails("ADD", conf, code=7)
    assert call.out["msg"] == "miimom: unknown key; did you mean 'miimon'?"
    cni.ok("DEL", conf)
    cni.assert_nothing_left(before)


def test_duplicate_keys_that_differ_in_case_last_one_wins_as_in_go(cni, make_links):
    """bond-cni (Go's decoder) takes the last of "mode" and "Mode": the same config must
    build the same bond with either plugin."""
    links = host_links(cni, make_links)
    conf = json.dumps(cni.conf(links))[:-1] + ', "Mode": "balance-xor", "MIIMON": "200"}'
    cni.ok("ADD", conf)
    data = cni.bond()["linkinfo"]["info_data"]
    assert (data["mode"], data["miimon"]) == ("balance-xor", 200)
    cni.ok("DEL", conf)

# ruff: noqa: F811  (fixtures imported from test_artifact and podman_env)
"""The node agent where it matters, with real bonds: killed in the middle of an ADD, 32 ADDs
at once through one agent, restarted while pods come and go, and podman driving the installed
native `bond` through it. (The whole CNI suite also
runs through the agent: tests/kernel/test_cni_support.py; the protocol and hostile clients are
in tests/unit/test_agent.py.) Each test has an agent of its own, since it kills or restarts it.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.harness.netns import Netns, NetnsPool
from tests.kernel import podman_env
from tests.kernel.podman_env import PodmanEnv, host_veths
from tests.kernel.test_artifact import artifact, host_link, installed, section  # noqa: F401
from tests.kernel.test_cni_support import STATE_ROOT, AgentProcess, Env, host_links
from tests.reliability.nothing_left import LinkView, assert_nothing_left

busybox_rootfs = podman_env.busybox_rootfs
cni_bin_dir = podman_env.cni_bin_dir
make_podman_env = podman_env.make_podman_env

SLOW_IPAM = """#!/bin/sh
# host-local, except that ADD first says it started and then hangs: a request in flight.
if [ "$CNI_COMMAND" = ADD ]; then
    : >"$SLOW_IPAM_MARK"
    exec sleep 120
fi
exec /usr/lib/cni/host-local
"""


@pytest.fixture
def agent() -> Iterator[AgentProcess]:
    directory = Path(f"/run/bondctl-agent-test-{secrets.token_hex(4)}")
    running = AgentProcess(directory).start()
    yield running
    running.stop(signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def world(make_netns) -> Iterator[Env]:
    token = secrets.token_hex(4)
    env = Env(make_netns("host"), make_netns("pod"), STATE_ROOT / f"bond-agent-{token}",
              STATE_ROOT / f"ipam-agent-{token}")
    yield env
    env.cleanup()


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.uml_weight(5)
def test_agent_killed_mid_add_then_direct_del_leaves_nothing(world, make_links, agent,
                                                             tmp_path):
    links = host_links(world, make_links)
    before = world.snapshot(world.host, links)
    ipam_dir = tmp_path / "cni"
    ipam_dir.mkdir()
    (ipam_dir / "slow-ipam").write_text(SLOW_IPAM)
    (ipam_dir / "slow-ipam").chmod(0o755)
    mark = tmp_path / "ipam-started"
    conf = world.conf(links, ipam=True)
    conf["ipam"]["type"] = "slow-ipam"
    path = f"{ipam_dir}:/usr/lib/cni"
    world.via_shim = agent.socket  # the agent dies before it could log the request
    result: dict[str, Any] = {}
    adding = threading.Thread(target=lambda: result.update(call=world.call(
        "ADD", conf, path=path, env={"SLOW_IPAM_MARK": str(mark)})))
    adding.start()
    wait_for(mark.exists, "the ADD to reach IPAM")
    assert world.bond()["linkinfo"]["info_kind"] == "bond"  # half done: bond made, no IP yet
    agent.proc.send_signal(signal.SIGKILL)
    adding.join(60)
    call = result["call"]
    assert call.rc == 1 and call.code == 11, call.out  # a CNI error, never a retry elsewhere
    assert "node agent ended" in call.out["msg"]
    world.via_shim = None  # the runtime's DEL finds no agent: the direct path
    world.ok("DEL", conf, path=path)
    world.assert_nothing_left(before)


@pytest.mark.uml_weight(12)  # 32 namespaces, 64 calls: ~50 s in UML
def test_32_parallel_adds_through_the_agent(agent, netns_pool: NetnsPool):
    """Links in the pods (dummies) keep the set-up cheap; each ADD and DEL is checked."""
    host = netns_pool.new("host")
    pods = [netns_pool.new("pod") for _ in range(32)]
    token = secrets.token_hex(4)
    world = Env(host, pods[0], STATE_ROOT / f"bond-agent32-{token}",
                STATE_ROOT / f"ipam-agent32-{token}", agent=agent)
    try:
        for pod in pods:
            pod.batch(["link add net1 type dummy", "link add net2 type dummy"])
        conf = world.conf(["net1", "net2"], linksInContainer=True, logLevel="warning")
        with ThreadPoolExecutor(max_workers=32) as pool:
            adds = list(pool.map(lambda i: world.call("ADD", conf, cid=f"p{i}",
                                                      netns=str(pods[i].path)), range(32)))
        assert [c.rc for c in adds] == [0] * 32, [c.out for c in adds if c.rc]
        for pod in pods:
            bond = pod.link("bond0")
            assert bond is not None and bond["linkinfo"]["info_kind"] == "bond"
            assert sorted(x["ifname"] for x in pod.links() if x.get("master") == "bond0") == \
                ["net1", "net2"]
        assert len(world.records()) == 32
        with ThreadPoolExecutor(max_workers=32) as pool:
            dels = list(pool.map(lambda i: world.call("DEL", conf, cid=f"p{i}",
                                                      netns=str(pods[i].path)), range(32)))
        assert [c.rc for c in dels] == [0] * 32, [c.out for c in dels if c.rc]
        assert world.records() == []
        assert all(pod.link("bond0") is None for pod in pods)
        assert agent.text().count(": ok in ") >= 64
    finally:
        world.cleanup()


@pytest.mark.uml_weight(10)  # two agent starts and a dozen calls: ~40 s in UML
def test_agent_restarted_while_pods_come_and_go(world, make_links, agent):
    """ADD/DEL cycles run on while the agent is stopped (SIGTERM) and started again: calls
    meanwhile take the direct path, in-flight ones finish, and nothing is left."""
    links = host_links(world, make_links)
    before = world.snapshot(world.host, links)
    conf = world.conf(links, ipam=True)  # logLevel debug: each line says who served it
    stop = threading.Event()
    failures: list[str] = []
    stderr: list[str] = []
    cycles = [0]

    world.via_shim = agent.socket  # either mode may serve a call here

    def churn() -> None:
        while not stop.is_set():
            for command in ("ADD", "DEL"):
                call = world.call(command, conf)
                stderr.append(call.stderr)
                if call.rc != 0:
                    failures.append(f"{command}: {call.out}")
                    stop.set()
            cycles[0] += 1

    runner = threading.Thread(target=churn)
    runner.start()
    try:
        for _ in range(1):  # each agent start costs seconds of imports in UML
            wait_for(lambda n=cycles[0]: cycles[0] >= n + 2 or stop.is_set(), "two cycles")
            assert agent.stop(signal.SIGTERM) == 0, agent.text()
            wait_for(lambda n=cycles[0]: cycles[0] >= n + 1 or stop.is_set(),
                     "a cycle without the agent")
            agent.start()
        wait_for(lambda n=cycles[0]: cycles[0] >= n + 2 or stop.is_set(), "two more cycles")
    finally:
        stop.set()
        runner.join(120)
    assert not failures, failures
    logs = "".join(stderr)
    assert "(agent)" in logs, "no call was served by the agent"
    assert any("(agent)" not in line for line in logs.splitlines() if " ADD " in line), \
        "no call took the direct path while the agent was down"
    assert_nothing_left(world, before)
    assert LinkView(world.pod).bonds() == []


@pytest.mark.uml_weight(15)  # podman, an agent start: ~60 s in UML
def test_podman_through_the_agent(installed: Path, make_podman_env: Any, peer_netns: Netns):
    """A real runtime on the installed native `bond`: VERSION, ADD and DEL all served by the
    agent (its log), the plugin's logFile lines marked (agent), the host links back after."""
    tag = secrets.token_hex(3)
    links = [f"ba{tag}a", f"ba{tag}b"]
    host_veths(peer_netns, links)
    podman: PodmanEnv = make_podman_env(installed)
    directory = Path(f"/run/bondctl-agent-test-{tag}")
    # podman hands its environment to plugins, but a request's BONDCTL_* are not the agent's
    # to take: where logFile may go is the agent's own setting.
    agent = AgentProcess(directory, {"BONDCTL_LOG_DIR": str(podman.log_dir)}).start()
    podman.env["BONDCTL_AGENT_SOCKET"] = agent.socket
    net = f"bondag{tag}"
    podman.add_network({
        "cniVersion": "1.0.0", "name": net,
        "plugins": [{"type": "bond", "mode": "active-backup", "miimon": "100",
                     "links": [{"name": name} for name in links],
                     "ipam": {"type": "host-local", "subnet": "10.231.9.0/24",
                              "dataDir": str(podman.ipam_dir)},
                     "logFile": str(podman.log_dir / "bond.log"), "logLevel": "info"}],
    })
    try:
        addr = podman.run(net, "/bin/ip", "addr", ifname="bond0")
    finally:
        agent.stop()
        served = agent.text()
        shutil.rmtree(directory, ignore_errors=True)
    bond0 = section(addr, "bond0")
    assert bond0 is not None and "inet 10.231.9." in bond0, addr
    for name in links:
        slave = section(addr, name)
        assert slave is not None and "master bond0" in slave.splitlines()[0], addr
        assert "master" not in host_link(name), "DEL gave the link back"
    for command in ("VERSION", "ADD", "DEL"):
        assert any(f" {command} " in line and ": ok in " in line
                   for line in served.splitlines()), served
    log = (podman.log_dir / "bond.log").read_text()
    assert "/bond0 (agent) info:" in log and " DEL " in log, log

"""deploy/: every manifest is a valid Kubernetes object, every example's CNI config is one our
parser takes, and the Dockerfile, entrypoint and DaemonSet agree on paths.

docker does not run here (client only), so the image is checked statically.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bondctl.cni.config import bond_spec, parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted([*DEPLOY.glob("*.yaml"), *(DEPLOY / "examples").glob("*.yaml")])
EXAMPLES = sorted((DEPLOY / "examples").glob("*.yaml"))
NAD_API = "k8s.cni.cncf.io/v1"
MULTUS_NETWORKS = "k8s.v1.cni.cncf.io/networks"


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no document"
    return docs


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in MANIFESTS for doc in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in all_documents() if doc["kind"] == kind]


def test_there_is_something_to_check() -> None:
    assert DEPLOY / "daemonset.yaml" in MANIFESTS
    assert {p.name for p in EXAMPLES} >= {"bond-host-links.yaml", "bond-sriov.yaml",
                                          "bond-lacp.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_document_is_a_kubernetes_object(path: Path) -> None:
    for doc in documents(path):
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], doc
        assert isinstance(doc.get("kind"), str) and doc["kind"], doc
        name = doc.get("metadata", {}).get("name")
        assert isinstance(name, str) and name == name.lower() and len(name) <= 253, doc
        assert isinstance(doc.get("spec"), dict), f"{doc['kind']}/{name} has no spec"


def pod_spec_problems(spec: dict[str, Any]) -> list[str]:
    problems = []
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    containers = spec.get("containers") or []
    if not containers:
        problems.append("no containers")
    for c in containers:
        if not c.get("name") or not c.get("image"):
            problems.append(f"container without name or image: {c}")
        for mount in c.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{c['name']} mounts undefined volume {mount['name']}")
            if not str(mount.get("mountPath", "")).startswith("/"):
                problems.append(f"{c['name']}: mountPath must be absolute: {mount}")
    return problems


def containers() -> dict[str, dict[str, Any]]:
    (ds,) = of_kind("DaemonSet")
    return {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}


def test_daemonset() -> None:
    (ds,) = of_kind("DaemonSet")
    assert ds["apiVersion"] == "apps/v1"
    assert ds["metadata"]["namespace"] == "kube-system"
    spec = ds["spec"]
    labels = spec["template"]["metadata"]["labels"]
    selector = spec["selector"]["matchLabels"]
    assert selector and selector.items() <= labels.items(), "selector must match the template"
    pod = spec["template"]["spec"]
    assert pod_spec_problems(pod) == []
    assert any(t.get("operator") == "Exists" for t in pod["tolerations"])
    container = containers()["install"]
    limits = container["resources"]["limits"]
    assert {"cpu", "memory"} <= limits.keys()
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = container["volumeMounts"]
    assert volumes[mount["name"]]["hostPath"]["path"] == "/opt/cni/bin"
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    assert env["BOND_CNI_BIN_DIR"] == mount["mountPath"], "the installer writes into the mount"
    assert not mount.get("readOnly", False)


def test_daemonset_runs_the_agent_with_what_it_needs() -> None:
    """The agent's request children act for the host's runtime: the same paths as the host
    (socket dir, state root, pod namespaces, CNI_PATH), the host's PIDs, and SIGTERM time."""
    (ds,) = of_kind("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    agent = containers()["agent"]
    assert agent["image"] == containers()["install"]["image"]
    assert agent["command"][-1] == "agent" and agent["livenessProbe"]["exec"]["command"][-1] \
        == "probe"
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    mounted = {m["mountPath"]: volumes[m["name"]] for m in agent["volumeMounts"]}
    for path in ("/run/bondctl", "/var/lib/cni", "/run/netns", "/var/run/netns",
                 "/opt/cni/bin"):
        assert mounted.get(path) == path, f"{path} is not the host's {path}"
    netns = [m for m in agent["volumeMounts"] if m["mountPath"].endswith("/netns")]
    assert all(m.get("mountPropagation") == "HostToContainer" for m in netns), \
        "namespaces bind-mounted after the agent started must show up in it"
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["BONDCTL_STATE_ROOT"] == "/var/lib/cni" and "BONDCTL_LOG_DIR" in env
    assert pod["hostPID"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert "-m bondctl.cni.agent" in script and "--probe" in script


def test_systemd_unit_runs_the_agent_and_signals_only_it() -> None:
    unit = (DEPLOY / "bondctl-agent.service").read_text()
    keys = dict(line.split("=", 1) for line in unit.splitlines()
                if "=" in line and not line.startswith("#"))
    assert keys["ExecStart"].split()[1:3] == ["agent", "--socket"]
    assert keys["KillMode"] == "mixed", "control-group would SIGTERM requests in flight"
    assert "BONDCTL_STATE_ROOT=/var/lib/cni" in unit


def test_pods_in_examples_are_valid_and_use_defined_bond_networks() -> None:
    nads = {doc["metadata"]["name"] for doc in of_kind("NetworkAttachmentDefinition")}
    pods = of_kind("Pod")
    assert pods
    for pod in pods:
        assert pod_spec_problems(pod["spec"]) == []
        requested = json.loads(pod["metadata"]["annotations"][MULTUS_NETWORKS])
        bonds = [r for r in requested if r["name"].startswith("bond")]
        assert bonds and all(r["name"] in nads for r in bonds), requested


def example_configs() -> list[tuple[str, dict[str, Any], bytes]]:
    out = []
    for path in EXAMPLES:
        for doc in documents(path):
            if doc["kind"] == "NetworkAttachmentDefinition":
                assert doc["apiVersion"] == NAD_API
                raw = doc["spec"]["config"]
                assert isinstance(raw, str), "spec.config is a JSON string"
                out.append((doc["metadata"]["name"], json.loads(raw), raw.encode()))
    return out


@pytest.mark.parametrize("name,config,raw", example_configs(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_example_config_is_accepted_by_the_plugin_parser(name: str, config: dict[str, Any],
                                                         raw: bytes) -> None:
    conf = parse_config(raw)
    assert conf.warnings == (), conf.warnings
    assert conf.type == "bond" and conf.name == config["name"] == name
    spec = bond_spec(conf, "bond0")
    assert spec.mode == config["mode"]
    assert [s.name for s in spec.slaves] == [link["name"] for link in config["links"]]
    assert conf.ipam_type in ("host-local", "static")


def configs_by_name() -> dict[str, Any]:
    return {name: parse_config(raw) for name, _, raw in example_configs()}


def test_examples_cover_the_three_deployments() -> None:
    confs = configs_by_name()
    host = confs["bond-host-links"]
    assert host.links_in_container is False
    sriov = confs["bond-sriov"]
    assert sriov.links_in_container is True
    assert [link.name for link in sriov.links] == ["net1", "net2"]
    lacp = bond_spec(confs["bond-lacp"], "bond0")
    assert lacp.mode == "802.3ad"
    assert lacp.options["lacp_rate"] == "fast"
    assert lacp.options["xmit_hash_policy"] == "layer3+4"


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "dangling line continuation"
    return out


KNOWN_INSTRUCTIONS = {"FROM", "COPY", "ADD", "RUN", "ENV", "ENTRYPOINT", "CMD", "LABEL", "ARG",
                      "USER", "WORKDIR", "EXPOSE", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def test_dockerfile_copies_the_artifact_and_its_entrypoint_exists() -> None:
    steps = dockerfile_instructions(DEPLOY / "Dockerfile")
    assert steps[0][0] == "FROM"
    assert {i for i, _ in steps} <= KNOWN_INSTRUCTIONS
    copies = {}
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, dest = shlex.split(args)
            for src in sources:
                copies[src] = dest
    # The artifact as packaging/build-artifact.sh leaves it (dist/bond + dist/.bond-runtime).
    assert copies.get("dist/") == "/opt/bond/"
    build_script = (REPO / "packaging" / "build_artifact.py").read_text()
    assert 'default=REPO / "dist"' in build_script
    (entrypoint,) = [json.loads(args) for i, args in steps if i == "ENTRYPOINT"]
    sources = [src for src, dest in copies.items() if dest == entrypoint[0]]
    assert sources, f"ENTRYPOINT {entrypoint[0]} is not COPYed into the image"
    script = REPO / sources[0]
    assert script.is_file() and script.stat().st_mode & 0o111
    env = dict(kv.split("=", 1) for i, args in steps if i == "ENV"
               for kv in shlex.split(args))
    assert env["BOND_ARTIFACT"] == copies["dist/"] + "bond"
    assert env["BOND_CNI_BIN_DIR"] == containers()["install"]["volumeMounts"][0]["mountPath"]


def test_entrypoint_is_valid_posix_shell_and_runs_our_installer() -> None:
    script = DEPLOY / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "-m bondctl.cni.install" in text
    assert "${BOND_ARTIFACT:-/opt/bond/bond}" in text


def test_the_agent_serves_metrics_on_the_node_address() -> None:
    """hostNetwork: the monitor must listen where Prometheus scrapes, the node's address, on
    the port the PodMonitor names."""
    agent = containers()["agent"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    (port,) = [p["containerPort"] for p in agent["ports"] if p["name"] == "metrics"]
    assert agent["args"] == ["--metrics-address", f"$(NODE_IP):{port}"]

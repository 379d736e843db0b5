"""deploy/'s monitoring pieces agree with the metrics the monitor serves: the alerts and the
dashboard name only series that exist, the DaemonSet exposes the port the PodMonitor scrapes.
(The manifests' general shape is checked by test_deploy.py, which globs deploy/*.yaml.)"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from bondctl.observe.metrics import DEFAULT_PORT, SERIES
from tests.unit.test_deploy import DEPLOY, of_kind

SERIES_NAMES = {name + ("_info" if kind == "info" else "") for name, kind, _ in SERIES}
NAME = re.compile(r"\bbondctl_[a-z_]+")


def unknown_series(expr: str) -> set[str]:
    return set(NAME.findall(expr)) - SERIES_NAMES


def test_the_rule_has_the_four_alerts_on_known_series() -> None:
    (rule,) = [d for d in yaml.safe_load_all((DEPLOY / "prometheus-rule.yaml").read_text())]
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    rules = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {"BondDegraded", "BondRepeatedFailovers", "BondNoActiveSlave",
            "BondLacpPartnerMismatch"} <= set(rules)
    assert rules["BondDegraded"]["for"] == "5m"
    for name, alert in rules.items():
        assert NAME.search(alert["expr"]), name
        assert unknown_series(alert["expr"]) == set(), (name, alert["expr"])
        assert alert["labels"]["severity"] in ("info", "warning", "critical"), name
        assert alert["annotations"]["summary"], name


def test_the_dashboard_is_grafana_json_on_known_series() -> None:
    dash: dict[str, Any] = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dash["title"] and dash["uid"]
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids)) and ids
    for panel in dash["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            assert NAME.search(target["expr"]), panel["title"]
            assert unknown_series(target["expr"]) == set(), (panel["title"], target["expr"])


def test_the_agent_exposes_the_port_the_pod_monitor_scrapes() -> None:
    (ds,) = of_kind("DaemonSet")
    template = ds["spec"]["template"]
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "agent"]
    ports = {p["name"]: p for p in container.get("ports", [])}
    assert ports["metrics"]["containerPort"] == DEFAULT_PORT
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(DEFAULT_PORT)
    (monitor,) = of_kind("PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        template["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]

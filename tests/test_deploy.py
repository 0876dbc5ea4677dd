"""deploy/: the scrape config, the alert rules and the Grafana dashboard parse, and name only series the bot exports.

promtool (Debian's `prometheus` package) checks them fully when it is installed; the parse checks always run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.metrics import PrometheusMetrics

DEPLOY = Path(__file__).parent.parent / "deploy"
SERIES = re.compile(r"\bhkaipulse_[a-z0-9_]+")
ALERTS = {"HkAiPulseDigestsLate", "HkAiPulseDeliveryErrors", "HkAiPulseNoLeader", "HkAiPulseContentBroken"}


def exported() -> set[str]:
    return PrometheusMetrics("test:1").metric_names()


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    document = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def test_the_names_known_to_the_check_are_the_registrys() -> None:
    names = exported()
    assert {"hkaipulse_deliveries_total", "hkaipulse_digest_lag_seconds_bucket", "hkaipulse_scheduler_leader",
            "hkaipulse_content_broken"} <= names
    assert "hkaipulse_deliveries_sent_total" not in names  # the check can fail


def test_every_alert_rule_is_complete_and_names_only_exported_series() -> None:
    found = rules()
    assert {rule["alert"] for rule in found} >= ALERTS
    names = exported()
    for rule in found:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        used = set(SERIES.findall(rule["expr"])) | set(SERIES.findall(json.dumps(rule["annotations"])))
        assert used and used <= names, (rule["alert"], used - names)


def test_every_dashboard_panel_queries_exported_series() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    names = exported()
    for expr in expressions:
        used = set(SERIES.findall(expr))
        assert used and used <= names, (expr, used - names)
    # Every family the bot exports is on the dashboard.
    shown = {name for expr in expressions for name in SERIES.findall(expr)}
    families = {family.name for family in PrometheusMetrics("test:1").registry.collect()}
    assert all(any(used.startswith(family) for used in shown) for family in families), families


def test_the_alerts_unit_tests_feed_exported_series() -> None:
    tests = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())
    series = {SERIES.findall(entry["series"])[0] for test in tests["tests"] for entry in test["input_series"]}
    assert series <= exported(), series - exported()
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert tested >= ALERTS


def test_the_scrape_config_reads_metrics_with_a_bearer_token_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    assert job["static_configs"][0]["targets"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_the_config() -> None:
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "--syntax-only", "prometheus.yml"],
                    ["test", "rules", "alerts_test.yml"]):  # each alert fires on its series, and only then
        done = subprocess.run(["promtool", *command], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

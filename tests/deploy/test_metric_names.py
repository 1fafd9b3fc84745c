"""Every metric the Grafana dashboard and the Prometheus rules name exists on a running instance's
/metrics (a scale-out instance: PostgreSQL and Redis, so the broker's and the shared cache's metrics
are there), and every recording rule the dashboard draws is defined. A renamed metric breaks this
test, not a dashboard panel that silently goes blank in production."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.support.server import ServerProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tableforge.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"

# Made by Prometheus itself for each scrape target, never on an instance's /metrics.
FROM_PROMETHEUS = {"up"}

# PromQL words that are not metric names (functions, aggregations, keywords) used in our expressions.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "clamp_min",
    "clamp_max", "time", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "label_values", "abs", "delta", "deriv", "topk", "bottomk", "quantile",
}


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names in a PromQL expression."""
    names: set[str] = set()
    for alternatives in re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names.update(alternatives.split("|"))
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", text)  # numbers
    text = text.replace("$instance", "")  # the dashboard's variable
    text = re.sub(r"label_values\(([^,()]*),[^)]*\)", r"\1", text)  # Grafana's: (metric, label name)
    for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if word not in PROMQL_WORDS:
            names.add(word)
    return names


def rule_expressions() -> tuple[list[str], set[str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return [rule["expr"] for rule in rules], {rule["record"] for rule in rules if "record" in rule}


def dashboard_expressions() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v.get("type") == "query"]
    return exprs


def test_the_expression_parser_finds_names_and_only_names() -> None:
    expr = ('histogram_quantile(0.95, sum by (instance, le) (rate({__name__=~"a_bucket|b_bucket"}[5m])'
            ' unless rate(c_bucket{route="/x", method="POST"}[5m]))) > 0.05 and on (instance) d:rec:p95 > 1e6')
    assert metric_names(expr) == {"a_bucket", "b_bucket", "c_bucket", "d:rec:p95"}
    assert metric_names('time() - max by (exported_job) (m_ts > 0)') == {"m_ts"}
    assert metric_names('label_values(up{job="tableforge"}, instance)') == {"up"}


@pytest.fixture(scope="module")
def exposed(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The sample and family names a started scale-out instance exposes."""
    server = ServerProcess(free_port(), {
        "TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("names")),
        "TABLEFORGE_DATABASE_URL": pg_url, "TABLEFORGE_REDIS_URL": redis_url,
        "TABLEFORGE_REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:10]}"}, name="metric-names")
    server.start()
    try:
        httpx.get(f"{server.base_url}/api/systems", timeout=30)  # a cache lookup and an HTTP request
        text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    finally:
        server.stop()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
        names.update(family.name + s for s in suffixes.get(family.type, [""]))
        names.update(sample.name for sample in family.samples)
    yield names


def test_every_metric_in_the_dashboard_and_the_rules_exists(exposed: set[str]) -> None:
    rule_exprs, recorded = rule_expressions()
    used = set().union(*(metric_names(e) for e in rule_exprs + dashboard_expressions()))
    assert len(used) > 40  # the parse found the names (a broken parse finds few)
    undefined = {n for n in used if ":" in n} - recorded
    assert not undefined, f"recording rules used but not defined in alerts.yml: {sorted(undefined)}"
    missing = {n for n in used if ":" not in n} - exposed - FROM_PROMETHEUS
    assert not missing, f"named in the dashboard or the rules, absent from /metrics: {sorted(missing)}"
    for required in ("tableforge_backup_last_success_timestamp_seconds", "tableforge_maintenance_runs_total",
                     "tableforge_maintenance_last_success_timestamp_seconds", "tableforge_db_errors_total",
                     "process_cpu_seconds_total", "tableforge_broker_healthy", "tableforge_delivery_seconds_bucket"):
        assert required in used and required in exposed

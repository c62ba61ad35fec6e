"""The alert rules on the dashboards (issue 18): open episodes by severity and age, silent devices,
a customer's effective thresholds, baseline and daily resting rates equal SQL over rows written
here; the customer dashboard opens on the customer worth looking at.

Rows are written directly as the superuser (no job), tagged by sink id and customer prefix, and
deleted afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from heartbeat_ops import alert_defaults
from tests.superset.catalogue import CUSTOMER_DASHBOARD_SLUG, linked_customer
from tests.superset.superset_api import build_query_context, metric_labels
from tests.support.episodes import Episode, ago, insert_episodes

pytestmark = pytest.mark.integration

OUTAGE_LABEL = "ALL CUSTOMERS: ingestion outage"


@dataclass(frozen=True)
class AlertRows:
    tag: str
    critical: str  # an open critical episode, the newest: the customer worth looking at
    muted: str  # an open tachycardia, muted, with settings of their own
    silent: str  # an open device_silent episode and a closed bradycardia

    @property
    def customers(self) -> list[str]:
        return [self.critical, self.muted, self.silent]


@pytest.fixture(scope="module")
def alert_rows(superuser_dsn: str) -> Iterator[AlertRows]:
    tag = f"test-alerts-{uuid.uuid4().hex[:8]}"
    rows = AlertRows(tag, f"{tag}-A", f"{tag}-B", f"{tag}-C")
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            insert_episodes(
                cur,
                tag,
                [
                    Episode(rows.critical, "critical_high", ago(s=20), ago(s=2), None, 196, 8,
                            180),
                    Episode(rows.muted, "tachycardia", ago(h=2), ago(m=1), None, 131, 300, 100,
                            muted=True),
                    Episode(rows.silent, "device_silent", ago(m=40), ago(m=45)),
                    Episode(rows.silent, "bradycardia", ago(h=3), ago(m=170), ago(m=170), 44, 20,
                            50),
                    # warning, not the contract's critical: the counts below expect it so
                    Episode("*", "ingestion_silent", ago(m=5), ago(m=10), severity="warning"),
                ],
            )  # fmt: skip
            cur.execute(
                """
                INSERT INTO customer_activity (sink_id, customer_id, last_seen_at, silent_since)
                VALUES (%(tag)s, %(a)s, now() - interval '1 s', NULL),
                       (%(tag)s, %(b)s, now() - interval '30 s', NULL),
                       (%(tag)s, %(c)s, now() - interval '45 min', now() - interval '40 min')
                """,
                {"tag": tag, "a": rows.critical, "b": rows.muted, "c": rows.silent},
            )
            cur.execute(
                """
                INSERT INTO customer_alert_settings (customer_id, high_bpm, sustain_seconds,
                                                     muted_until, baseline_alerts)
                VALUES (%s, 100, 30, now() + interval '1 day', false)
                """,
                (rows.muted,),
            )
            # 12 days of resting rates for A (the last 2 elevated), and its baseline.
            cur.execute(
                """
                INSERT INTO customer_resting_days (customer_id, day, resting_bpm, hours)
                SELECT %(a)s, (now() AT TIME ZONE 'UTC')::date - d,
                       CASE WHEN d <= 2 THEN 66.5 ELSE 58 + (d %% 3) END, 18 + d %% 5
                FROM generate_series(1, 12) AS d
                """,
                {"a": rows.critical},
            )
            cur.execute(
                """
                INSERT INTO customer_baselines (customer_id, baseline_bpm, days, latest_day,
                                                latest_bpm)
                VALUES (%s, 59, 10, (now() AT TIME ZONE 'UTC')::date - 1, 66.5)
                """,
                (rows.critical,),
            )
        yield rows
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (tag,))
            for table in (
                "customer_activity",
                "customer_alert_settings",
                "customer_resting_days",
                "customer_baselines",
            ):
                cur.execute(f"DELETE FROM {table} WHERE customer_id = ANY(%s)", (rows.customers,))
        conn.close()


def _query(dsn: str, sql: str, params: dict | tuple = ()) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _charts(client, slug: str | None = None) -> dict[str, dict]:
    charts = client.dashboard_charts(slug) if slug else client.dashboard_charts()
    return {chart["slice_name"]: chart for chart in charts}


def _rows(client, chart: dict, customers: list[str] | None) -> list[dict]:
    """The chart's rows, filtered to `customers` as the Customer filter does. These charts are
    outside the Time range filter's scope: their own time filters (if any) apply."""
    answer = client.chart_data(build_query_context(chart, customers=customers))
    result = answer["result"][0]
    assert result.get("error") is None, (chart["slice_name"], result.get("error"))
    assert result["rowcount"] < chart["form_data"].get("row_limit", 2)
    return result["data"]


def test_open_episode_counts_per_severity_equal_sql(superset_client, alert_rows, superuser_dsn):
    charts = _charts(superset_client)
    expected = dict(
        _query(
            superuser_dsn,
            "SELECT severity, count(*) FROM heart_rate_alerts"
            " WHERE ended_at IS NULL AND customer_id = ANY(%s) GROUP BY severity",
            (alert_rows.customers,),
        )
    )
    assert expected == {"critical": 1, "warning": 2}
    for severity in ("critical", "warning"):
        chart = charts[f"{severity.capitalize()} episodes open"]
        (row,) = _rows(superset_client, chart, alert_rows.customers)
        assert row[metric_labels(chart)[0]] == expected[severity], severity


def test_open_episodes_critical_first_then_oldest(superset_client, alert_rows, superuser_dsn):
    """Open episodes whatever the time range (the muted one opened 2 hours ago is listed), critical
    first, then oldest first; muted marked; age in seconds since the start."""
    expected = _query(
        superuser_dsn,
        "SELECT severity, kind, customer_id, muted, extreme_bpm,"
        " extract(epoch FROM now() - started_at) FROM heart_rate_alerts"
        " WHERE ended_at IS NULL AND customer_id = ANY(%s) ORDER BY severity, started_at",
        (alert_rows.customers,),
    )
    chart = _charts(superset_client)["Open episodes (critical first, then oldest)"]
    rows = _rows(superset_client, chart, alert_rows.customers)
    assert [
        (r["severity"], r["kind"], linked_customer(r["customer_link"]), r["muted"] == "muted")
        for r in rows
    ] == [(severity, kind, customer, muted) for severity, kind, customer, muted, _, _ in expected]
    assert [r["kind"] for r in rows] == ["critical_high", "tachycardia", "device_silent"]
    assert [r["muted"] for r in rows] == ["", "muted", ""]
    assert [r["extreme_bpm"] for r in rows] == [bpm for *_, bpm, _ in expected]
    assert rows[1]["age"].startswith("2 h ")
    assert rows[0]["age"].endswith(" min")


def test_silent_devices_show_the_outage_first(superset_client, alert_rows, superuser_dsn):
    """Without a customer filter: the open ingestion_silent episode first, then every open
    device_silent episode, oldest first, with the customer's last message time."""
    expected = _query(
        superuser_dsn,
        "SELECT a.kind, a.customer_id, extract(epoch FROM ca.last_seen_at) * 1000"
        " FROM heart_rate_alerts a LEFT JOIN customer_activity ca"
        " ON ca.sink_id = a.sink_id AND ca.customer_id = a.customer_id"
        " WHERE a.ended_at IS NULL AND a.kind IN ('ingestion_silent', 'device_silent')"
        " ORDER BY a.customer_id = '*' DESC, a.started_at",
    )
    chart = _charts(superset_client)["Silent devices"]
    rows = _rows(superset_client, chart, None)
    assert rows[0]["customer_link"] == OUTAGE_LABEL
    assert [
        (
            r["kind"],
            "*" if r["customer_link"] == OUTAGE_LABEL else linked_customer(r["customer_link"]),
            None if r["last_seen_at"] is None else round(float(r["last_seen_at"])),
        )
        for r in rows
    ] == [
        (kind, customer, None if at is None else round(float(at)))
        for kind, customer, at in expected
    ]
    # One customer: their own silence only.
    (row,) = _rows(superset_client, chart, [alert_rows.silent])
    assert linked_customer(row["customer_link"]) == alert_rows.silent


def _settings_rows(client, customer: str) -> list[tuple]:
    chart = _charts(client, CUSTOMER_DASHBOARD_SLUG)["Alert settings"]
    return [(r["setting"], r["value"], r["applies"]) for r in _rows(client, chart, [customer])]


def test_alert_settings_are_the_customers_or_the_defaults(
    superset_client, alert_rows, superuser_dsn, stack
):
    """A customer without settings shows the global defaults, which come from the settings;
    one with settings shows theirs where set and the default elsewhere."""
    defaults = _settings_rows(superset_client, alert_rows.critical)
    assert defaults == [
        ("Low (bradycardia below, bpm)", str(stack.alert_low_bpm), "global default"),
        ("High (tachycardia above, bpm)", str(stack.alert_high_bpm), "global default"),
        ("Sustained for (s)", f"{stack.alert_sustain_seconds:g}", "global default"),
        ("Muted until", "not muted", "global default"),
        ("Baseline alerts (elevated resting)", "on", "global default"),
    ]
    ((muted_until,),) = _query(
        superuser_dsn,
        "SELECT to_char(muted_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')"
        " FROM customer_alert_settings WHERE customer_id = %s",
        (alert_rows.muted,),
    )
    assert _settings_rows(superset_client, alert_rows.muted) == [
        ("Low (bradycardia below, bpm)", str(stack.alert_low_bpm), "global default"),
        ("High (tachycardia above, bpm)", "100", "customer setting"),
        ("Sustained for (s)", "30", "customer setting"),
        ("Muted until", muted_until, "customer setting"),
        ("Baseline alerts (elevated resting)", "off", "customer setting"),
    ]


def test_global_defaults_are_written_from_the_settings(superuser_dsn, alert_rows, stack):
    """No default is typed in SQL: provisioning writes them from the settings, and the effective
    thresholds follow (checked in a transaction rolled back)."""
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn.cursor() as cur:
            alert_defaults.write(
                cur, stack.model_copy(update={"alert_high_bpm": 133, "alert_low_bpm": 47})
            )
            cur.execute(
                "SELECT setting, value FROM customer_alert_thresholds"
                " WHERE customer_id = %s AND position <= 2 ORDER BY position",
                (alert_rows.critical,),
            )
            assert [value for _, value in cur.fetchall()] == ["47", "133"]
    finally:
        conn.rollback()
        conn.close()
    ((low, high, sustain),) = _query(
        superuser_dsn, "SELECT low_bpm, high_bpm, sustain_seconds FROM alert_defaults"
    )
    assert (low, high, sustain) == (
        stack.alert_low_bpm,
        stack.alert_high_bpm,
        stack.alert_sustain_seconds,
    )


def test_baseline_and_resting_days_equal_sql(superset_client, alert_rows, superuser_dsn, stack):
    charts = _charts(superset_client, CUSTOMER_DASHBOARD_SLUG)
    ((baseline, latest, latest_day, days),) = _query(
        superuser_dsn,
        "SELECT baseline_bpm, latest_bpm, extract(epoch FROM latest_day::timestamp) * 1000, days"
        " FROM customer_baselines"
        " WHERE customer_id = %s",
        (alert_rows.critical,),
    )
    (row,) = _rows(superset_client, charts["Personal baseline"], [alert_rows.critical])
    assert float(row["baseline_bpm"]) == pytest.approx(baseline)
    assert float(row["elevated_from_bpm"]) == pytest.approx(baseline + stack.baseline_margin_bpm)
    assert float(row["latest_bpm"]) == pytest.approx(latest)
    assert float(row["latest_day"]) == float(latest_day)
    assert row["status"] == f"median of {days} daily resting rates"
    # A customer without a baseline says how far they are from one.
    (row,) = _rows(superset_client, charts["Personal baseline"], [alert_rows.muted])
    assert row["baseline_bpm"] is None
    assert row["status"] == f"no baseline yet: 0 of {stack.baseline_min_days} days needed"

    chart = charts["Daily resting heart rate"]
    resting, base, elevated = metric_labels(chart)
    expected = _query(
        superuser_dsn,
        "SELECT extract(epoch FROM day::timestamp) * 1000, resting_bpm FROM customer_resting_days"
        " WHERE customer_id = %s ORDER BY day",
        (alert_rows.critical,),
    )
    rows = sorted(_rows(superset_client, chart, [alert_rows.critical]), key=lambda r: r["day"])
    assert [(float(r["day"]), pytest.approx(r[resting])) for r in rows] == [
        (float(at), bpm) for at, bpm in expected
    ]
    assert all(r[base] == pytest.approx(baseline) for r in rows)
    assert all(r[elevated] == pytest.approx(baseline + stack.baseline_margin_bpm) for r in rows)


def _priority_filter(client) -> tuple[dict, list[str]]:
    """The customer dashboard's Customer filter, and the customers its query lists, in order:
    the query the filter's frontend sends (dataset, column, sort metric, first item picked)."""
    dashboard = client.get(f"/api/v1/dashboard/{CUSTOMER_DASHBOARD_SLUG}")["result"]
    filters = json.loads(dashboard["json_metadata"])["native_filter_configuration"]
    customer = next(f for f in filters if f["name"] == "Customer")
    target = customer["targets"][0]
    metric = customer["sortMetric"]
    answer = client.chart_data(
        {
            "datasource": {"id": target["datasetId"], "type": "table"},
            "force": True,
            "queries": [
                {
                    "columns": [target["column"]["name"]],
                    "metrics": [metric],
                    "orderby": [[metric, customer["controlValues"]["sortAscending"]]],
                    "row_limit": 1000,
                    "filters": [],
                    "extras": {"where": "", "having": ""},
                }
            ],
            "result_format": "json",
            "result_type": "full",
        }
    )
    result = answer["result"][0]
    assert result.get("error") is None, result.get("error")
    return customer, [row[target["column"]["name"]] for row in result["data"]]


def test_customer_dashboard_opens_on_the_newest_open_critical_episode(
    superset_client, alert_rows, superuser_dsn
):
    customer, listed = _priority_filter(superset_client)
    assert customer["controlValues"]["defaultToFirstItem"] is True
    assert customer["requiredFirst"] is True
    assert listed[0] == alert_rows.critical
    assert len(listed) == len(set(listed))
    # The critical episode resolved: the newest open (unmuted) episode's customer comes first.
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE heart_rate_alerts SET ended_at = now() WHERE sink_id = %s AND customer_id = %s",
            (alert_rows.tag, alert_rows.critical),
        )
        cur.execute(
            "UPDATE heart_rate_alerts SET started_at = now() WHERE sink_id = %s"
            " AND customer_id = %s AND kind = 'device_silent'",
            (alert_rows.tag, alert_rows.silent),
        )
    try:
        _, listed = _priority_filter(superset_client)
        ((newest,),) = _query(
            superuser_dsn,
            "(SELECT customer_id FROM heart_rate_alerts WHERE ended_at IS NULL AND NOT muted"
            " AND customer_id <> '*' AND severity = 'critical' ORDER BY started_at DESC LIMIT 1)"
            " UNION ALL SELECT %s LIMIT 1",
            (alert_rows.silent,),
        )
        assert listed[0] == newest
    finally:
        with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE heart_rate_alerts SET ended_at = NULL WHERE sink_id = %s"
                " AND customer_id = %s",
                (alert_rows.tag, alert_rows.critical),
            )


def test_without_open_episodes_the_most_recently_active_comes_first(superuser_dsn, alert_rows):
    """The view's last resort (checked in a transaction rolled back): with nothing open, the
    customer whose newest message reached Kafka last."""
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE heart_rate_alerts SET ended_at = now() WHERE ended_at IS NULL")
            cur.execute(
                "UPDATE customer_activity SET last_seen_at = now() + interval '1 minute'"
                " WHERE customer_id = %s",
                (alert_rows.muted,),
            )
            cur.execute(
                "SELECT customer_id, reason FROM heart_rate_customer_priority WHERE priority = 1"
            )
            assert cur.fetchall() == [(alert_rows.muted, "recently active")]
    finally:
        conn.rollback()
        conn.close()

"""The dashboards as code: the bundle imports idempotently, each dashboard holds every chart with
its filters, and every chart's query returns the right rows from the read-only connection."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
import uuid

import psycopg2
import pytest

from tests.superset.catalogue import (
    ALL_CHARTS,
    BUNDLE,
    CHART_DATASETS,
    CUSTOMER_DASHBOARD_SLUG,
    DASHBOARDS,
    DATASETS,
    EXPECTED_CHARTS,
    NOT_PER_CUSTOMER,
    NOT_TIME_RANGED,
    NOTIFIER_CHART,
    OPERATIONS_CHARTS,
    OPERATIONS_DASHBOARD_SLUG,
    REPLICA_CHART,
    linked_customer,
)
from tests.superset.superset_api import (
    DASHBOARD_SLUG,
    LAST_HOUR,
    build_query_context,
    metric_labels,
    run_import,
)

pytestmark = pytest.mark.integration


def _inventory(client) -> dict[str, int]:
    counts = {
        "dashboards": client.count("dashboard"),
        "charts": client.count("chart"),
        "datasets": client.count("dataset"),
        "databases": client.count("database"),
        "this dashboard": client.count("dashboard", "slug", DASHBOARD_SLUG),
        "customer dashboard": client.count("dashboard", "slug", CUSTOMER_DASHBOARD_SLUG),
        "operations dashboard": client.count("dashboard", "slug", OPERATIONS_DASHBOARD_SLUG),
    }
    for name in ALL_CHARTS:
        counts[f"chart {name}"] = client.count("chart", "slice_name", name)
    for table in DATASETS:
        counts[f"dataset {table}"] = client.count("dataset", "table_name", table)
    return counts


def test_bundle_holds_every_dataset_once():
    names = sorted(path.stem for path in (BUNDLE / "datasets").rglob("*.yaml"))
    assert names == sorted(DATASETS)
    assert len(DATASETS) == 22
    assert "heart_rate_readings" not in CHART_DATASETS


def test_bundle_import_twice_changes_nothing(superset_client, superset_env):
    """The start imported the bundle once (superset/run.sh); importing it again adds, removes
    and duplicates nothing."""
    before = _inventory(superset_client)

    second = run_import(superset_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "imported" in second.stdout
    after = _inventory(superset_client)

    assert after == before
    assert after["this dashboard"] == 1
    assert after["customer dashboard"] == 1
    assert after["operations dashboard"] == 1
    assert all(after[f"chart {name}"] == 1 for name in ALL_CHARTS)
    assert all(after[f"dataset {table}"] == 1 for table in DATASETS)


@pytest.mark.parametrize("slug", DASHBOARDS)
def test_dashboard_has_every_chart_and_filter(superset_client, slug):
    title, expected, customer_excluded = DASHBOARDS[slug]
    dashboard = superset_client.get(f"/api/v1/dashboard/{slug}")["result"]
    assert dashboard["dashboard_title"] == title
    metadata = json.loads(dashboard["json_metadata"])
    assert metadata["refresh_frequency"] == 10

    charts = superset_client.dashboard_charts(slug)
    found = {chart["slice_name"]: chart for chart in charts}
    assert set(found) == set(expected)
    for name, (viz, _) in expected.items():
        assert found[name]["form_data"]["viz_type"] == viz, name

    datasets = {
        d["id"]: d["table_name"]
        for d in superset_client.get(f"/api/v1/dashboard/{slug}/datasets")["result"]
    }
    assert set(datasets.values()) == {table for _, table in expected.values()}
    for name, (_, table) in expected.items():
        dataset_id = int(found[name]["form_data"]["datasource"].split("__")[0])
        assert datasets[dataset_id] == table, name

    filters = {f["name"]: f for f in metadata["native_filter_configuration"]}
    assert filters["Time range"]["filterType"] == "filter_time"
    # Open episodes, silent devices and dead deliveries are the present: the time range does not
    # reach them (ids remapped on import).
    assert set(filters["Time range"]["scope"]["excluded"]) == {
        found[name]["id"] for name in expected if name in NOT_TIME_RANGED
    }
    if customer_excluded is None:
        assert "Customer" not in filters
        return
    customer = filters["Customer"]
    assert customer["filterType"] == "filter_select"
    assert customer["targets"][0]["column"]["name"] == "customer_id"
    # The customer filter skips the charts whose tables have no customer.
    assert set(customer["scope"]["excluded"]) == {
        found[name]["id"] for name, (_, table) in expected.items() if table in NOT_PER_CUSTOMER
    }


def test_the_main_dashboard_is_about_customers_and_links_to_operations(superset_client):
    """Every chart of the main dashboard is per customer (quarantine and pipeline health moved to
    Pipeline Operations), and its layout links there."""
    assert not {table for _, table in EXPECTED_CHARTS.values()} & NOT_PER_CUSTOMER
    dashboard = superset_client.get(f"/api/v1/dashboard/{DASHBOARD_SLUG}")["result"]
    markdown = [
        item["meta"]["code"]
        for item in json.loads(dashboard["position_json"]).values()
        if isinstance(item, dict) and item.get("type") == "MARKDOWN"
    ]
    assert any(f"/superset/dashboard/{OPERATIONS_DASHBOARD_SLUG}/" in code for code in markdown)
    # The average's axis spans the data (a change of a few bpm shows), not 0..max.
    charts = {c["slice_name"]: c for c in superset_client.dashboard_charts()}
    assert charts["Average heart rate over time"]["form_data"]["truncateYAxis"] is True


def test_data_connection_is_the_read_only_role(superset_client, stack):
    databases = superset_client.get("/api/v1/database/")["result"]
    heartbeat = next(d for d in databases if d["database_name"] == "heartbeat")
    detail = superset_client.get(f"/api/v1/database/{heartbeat['id']}/connection")["result"]
    uri = detail["sqlalchemy_uri"]
    assert f"//{stack.reader_user}:XXXXXXXXXX@" in uri  # the password is stored, never shown
    assert stack.reader_password not in json.dumps(detail)
    assert detail["allow_dml"] is False


def test_every_chart_query_returns_rows(superset_client, sample_data):
    """POST /api/v1/chart/data with each chart's query, filtered to the sample's customers where
    the chart is per customer (as the dashboard's customer filter does)."""
    charts = [*superset_client.dashboard_charts(), *operations_charts(superset_client).values()]
    assert len(charts) == len(EXPECTED_CHARTS) + len(OPERATIONS_CHARTS)
    for chart in charts:
        _, table = {**EXPECTED_CHARTS, **OPERATIONS_CHARTS}[chart["slice_name"]]
        customers = None if table in NOT_PER_CUSTOMER else sample_data.customers
        answer = superset_client.chart_data(
            build_query_context(chart, time_range=LAST_HOUR, customers=customers)
        )
        result = answer["result"][0]
        assert result.get("error") is None, (chart["slice_name"], result.get("error"))
        assert result["rowcount"] > 0, chart["slice_name"]
        # The customer filter reaches the per-customer charts: Superset applied it to the query
        # rather than rejecting it as a column missing from the chart's dataset.
        applied = {f.get("column") for f in result.get("applied_filters", [])}
        rejected = {f.get("column") for f in result.get("rejected_filters", [])}
        if customers:
            assert "customer_id" in applied, (chart["slice_name"], result.get("applied_filters"))
        assert "customer_id" not in rejected, (chart["slice_name"], result["rejected_filters"])


def test_pipeline_health_charts_ignore_the_notifiers_rows(
    superset_client, sample_data, superuser_dsn
):
    """The notifier's pipeline_metrics rows (query_name 'notifier', sql/010) over the same minutes
    as the sample's job rows, with figures no job row has: the health charts' SQL keeps to the
    job's rows ('readings'), so none of their values comes near them."""
    huge, query_id = 10**9, f"notifier:{sample_data.tag}"
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO pipeline_metrics (query_id, query_name, batch_id, run_id, batch_time,
                    input_rows, input_rows_per_second, processed_rows_per_second,
                    batch_duration_ms, kafka_lag, details)
                SELECT %(id)s, 'notifier', b, %(id)s, now() - make_interval(mins => 30 - b),
                       %(huge)s, %(huge)s, %(huge)s, %(huge)s, %(huge)s, '{}'
                FROM generate_series(0, 29) AS b
                """,
                {"id": query_id, "huge": huge},
            )
        operations = operations_charts(superset_client)
        charts = [
            c
            for name, c in operations.items()
            if OPERATIONS_CHARTS[name][1] == "pipeline_metrics"
            and name not in (NOTIFIER_CHART, REPLICA_CHART)
        ]
        assert len(charts) == 3
        for chart in charts:
            answer = superset_client.chart_data(build_query_context(chart, time_range=LAST_HOUR))
            result = answer["result"][0]
            assert result.get("error") is None, (chart["slice_name"], result.get("error"))
            assert "query_name = 'readings'" in result["query"], result["query"]
            label = metric_labels(chart)[0]
            values = [row[label] for row in result["data"] if row.get(label) is not None]
            assert values, chart["slice_name"]  # the sample's job rows are there
            assert max(values) < huge, (chart["slice_name"], max(values))
        # The notifier's own chart reads its rows (no job row comes near these figures). The
        # suite's running notifier writes rows of its own into the same minutes, which the chart
        # averages in: the inserted figure shows, diluted by a handful of small values at most.
        notifier = operations[NOTIFIER_CHART]
        result = superset_client.chart_data(build_query_context(notifier, time_range=LAST_HOUR))[
            "result"
        ][0]
        assert result.get("error") is None, result.get("error")
        assert "query_name = 'notifier'" in result["query"], result["query"]
        for label in metric_labels(notifier):
            values = [row[label] for row in result["data"] if row.get(label) is not None]
            assert values and huge / 100 < max(values) <= huge, (label, values[:5])
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM pipeline_metrics WHERE query_id = %s", (query_id,))
        conn.close()


def operations_charts(client) -> dict[str, dict]:
    """The Pipeline Operations dashboard's charts by name."""
    return {c["slice_name"]: c for c in client.dashboard_charts(OPERATIONS_DASHBOARD_SLUG)}


def _big_number(superset_client, charts, name, customers):
    chart = charts[name]
    answer = superset_client.chart_data(
        build_query_context(chart, time_range=LAST_HOUR, customers=customers)
    )
    row = answer["result"][0]["data"][0]
    return row[metric_labels(chart)[0]]


def test_statistics_from_rollups_match_raw_readings(superset_client, sample_data, superuser_dsn):
    """total = sum(readings), average weighted by readings, min of mins, max of maxes: the
    rollup-based big numbers equal what the raw readings say."""
    charts = {c["slice_name"]: c for c in superset_client.dashboard_charts()}
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), avg(heart_rate), min(heart_rate), max(heart_rate)"
            " FROM heart_rate_readings WHERE kafka_topic = %s",
            (sample_data.tag,),
        )
        total, average, minimum, maximum = cur.fetchone()
    customers = sample_data.customers
    assert _big_number(superset_client, charts, "Total readings", customers) == total
    assert _big_number(superset_client, charts, "Average heart rate", customers) == pytest.approx(
        float(average)
    )
    assert _big_number(superset_client, charts, "Minimum heart rate", customers) == minimum
    assert _big_number(superset_client, charts, "Maximum heart rate", customers) == maximum


def test_distribution_from_rollup_bins_matches_raw_readings(
    superset_client, sample_data, superuser_dsn
):
    """The histogram reads heart_rate_minute_bins (the rollups' bpm_bins), never raw readings; per
    5-bpm bin it counts what the raw readings say, for all sample customers and for one."""
    charts = {c["slice_name"]: c for c in superset_client.dashboard_charts()}
    chart = charts["Heart-rate distribution"]
    (label,) = metric_labels(chart)
    for customers in (sample_data.customers, sample_data.customers[:1]):
        with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT (heart_rate / 5) * 5, count(*) FROM heart_rate_readings"
                " WHERE kafka_topic = %s AND customer_id = ANY(%s) GROUP BY 1",
                (sample_data.tag, customers),
            )
            raw = dict(cur.fetchall())
        answer = superset_client.chart_data(
            build_query_context(chart, time_range=LAST_HOUR, customers=customers)
        )
        result = answer["result"][0]
        assert result.get("error") is None, result.get("error")
        assert {row["bpm_bin"]: row[label] for row in result["data"]} == raw
        assert "heart_rate_readings" not in result["query"]
        assert "heart_rate_minute_bins" in result["query"]


def test_alerts_table_lists_most_recent_first(superset_client, sample_data):
    chart = next(
        c
        for c in superset_client.dashboard_charts()
        if c["slice_name"] == "Abnormal episodes (open and recent)"
    )
    answer = superset_client.chart_data(
        build_query_context(chart, time_range=LAST_HOUR, customers=sample_data.customers)
    )
    rows = answer["result"][0]["data"]
    assert [
        (linked_customer(r["customer_link"]), r["kind"], r["severity"], r["status"]) for r in rows
    ] == [
        (sample_data.customers[1], "critical_low", "critical", "open"),
        (sample_data.customers[0], "tachycardia", "warning", "open"),
        (sample_data.customers[2], "device_silent", "warning", "open"),
        (sample_data.customers[1], "bradycardia", "warning", "closed"),
    ]


def test_customer_link_survives_awkward_ids(superuser_dsn):
    """Quotes, rison's `!`, HTML and non-ASCII in an id: the link still names it exactly."""
    awkward = "Zoë O'Brien <3 & !bang"
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT heartbeat_customer_link(%s)", (awkward,))
        (link,) = cur.fetchone()
    match = re.fullmatch(r'<a href="[^"<>\s]+">([^<]+)</a>', link)
    assert match, link
    assert html.unescape(match.group(1)) == awkward
    state = urllib.parse.unquote(link.split("native_filters=", 1)[1].split('"', 1)[0])
    assert "val:!('Zoë O!'Brien <3 & !!bang')" in state


@pytest.mark.parametrize(
    ("name", "kept"),
    [("Latest quarantined readings", 20), ("Abnormal episodes (open and recent)", 100)],
)
def test_purpose_limited_tables_never_reach_their_row_limit(
    superset_client, superuser_dsn, name, kept
):
    """More rows than a table is meant to show: it shows its most recent `kept`, and its query
    returns fewer rows than the chart's row limit, so Superset shows no row-limit warning."""
    tag = f"test-limit-{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO rejected_readings (raw_value, reason, detail, kafka_topic,
                                           kafka_partition, kafka_offset, ingested_at)
            SELECT '{}', 'missing_field', 'test', %(tag)s, 0, n,
                   now() - make_interval(secs => n)
            FROM generate_series(1, %(rows)s) AS n
            """,
            {"tag": tag, "rows": kept + 30},
        )
        cur.execute(
            """
            INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, extreme_bpm,
                                           readings, last_reading_at)
            SELECT %(tag)s, %(tag)s, 'tachycardia', now() - make_interval(secs => 2 * n), 150,
                   5, now() - make_interval(secs => n)
            FROM generate_series(1, %(rows)s) AS n
            """,
            {"tag": tag, "rows": kept + 30},
        )
    try:
        charts = {c["slice_name"]: c for c in superset_client.dashboard_charts()}
        chart = {**charts, **operations_charts(superset_client)}[name]
        result = superset_client.chart_data(build_query_context(chart, time_range=LAST_HOUR))[
            "result"
        ][0]
        assert result.get("error") is None, result.get("error")
        assert result["rowcount"] == kept
        assert result["rowcount"] < chart["form_data"]["row_limit"]
        times = [row.get("ingested_at") or row.get("started_at") for row in result["data"]]
        assert times == sorted(times, reverse=True)
    finally:
        with psycopg2.connect(superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM rejected_readings WHERE kafka_topic = %s", (tag,))
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (tag,))

"""The notifier on the main dashboard (issue 19): open episodes with the unacknowledged ones first
and their age, and the deliveries that reached nobody, equal SQL over rows written here.

Rows are written directly as the superuser (no job, no notifier), tagged by sink id, customer
prefix and channel target, and deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from tests.superset.catalogue import OPERATIONS_DASHBOARD_SLUG, linked_customer
from tests.superset.superset_api import build_query_context
from tests.support.episodes import Episode, ago, insert_episodes
from tests.support.notifier import insert_webhook_channel

pytestmark = pytest.mark.integration

ATTENTION_CHART = "Open episodes (unacknowledged first)"
DEAD_CHART = "Dead deliveries"
FAILING_CHART = "Failing channels"


@dataclass(frozen=True)
class NotifyRows:
    tag: str
    acked: str  # an open critical episode, the newest, acknowledged
    unacked: str  # an open tachycardia, older, not acknowledged; its closed bradycardia too
    muted: str  # an open muted episode: it notifies no one, so it needs no attention

    @property
    def customers(self) -> list[str]:
        return [self.acked, self.unacked, self.muted]


@pytest.fixture(scope="module")
def notify_rows(superuser_dsn: str) -> Iterator[NotifyRows]:
    tag = f"test-notify-{uuid.uuid4().hex[:8]}"
    rows = NotifyRows(tag, f"{tag}-A", f"{tag}-U", f"{tag}-M")
    target = f"http://127.0.0.1:9/{tag}"
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            insert_episodes(
                cur,
                tag,
                [
                    Episode(rows.acked, "critical_high", ago(s=90), ago(s=2), None, 195, 8, 180),
                    Episode(rows.unacked, "tachycardia", ago(h=3), ago(m=1), None, 131, 300, 100),
                    Episode(rows.unacked, "bradycardia", ago(h=5), ago(m=290), ago(m=290), 44, 20,
                            50),
                    Episode(rows.muted, "tachycardia", ago(h=4), ago(m=1), None, 133, 90, 100,
                            muted=True),
                ],
            )  # fmt: skip
            cur.execute(
                """
                INSERT INTO alert_acks (alert_id, acked_by, note)
                SELECT alert_id, 'nurse on call', 'called the customer' FROM heart_rate_alerts
                WHERE sink_id = %s AND customer_id = %s
                """,
                (tag, rows.acked),
            )
            channel_id = insert_webhook_channel(cur, target)
            # The unacknowledged tachycardia's open event: refused (dead); the critical one's
            # open event: delivered (not shown).
            cur.execute(
                """
                INSERT INTO notify_deliveries (channel_id, event_id, alert_id, alert_status, kind,
                                               severity, customer_id, outcome, attempts,
                                               http_status, last_error, delivered_at, dead_at)
                SELECT %(channel)s, a.alert_id || ':open:0', a.alert_id, 'open', a.kind,
                       a.severity, a.customer_id,
                       CASE WHEN a.severity = 'critical' THEN 'delivered' ELSE 'dead' END,
                       1,
                       CASE WHEN a.severity = 'critical' THEN 200 ELSE 400 END,
                       CASE WHEN a.severity = 'critical' THEN NULL ELSE 'HTTP 400 Bad Request' END,
                       CASE WHEN a.severity = 'critical' THEN now() END,
                       CASE WHEN a.severity = 'critical' THEN NULL ELSE now() END
                FROM heart_rate_alerts a
                WHERE a.sink_id = %(tag)s AND a.ended_at IS NULL AND NOT a.muted
                """,
                {"channel": channel_id, "tag": tag},
            )
        yield rows
    finally:
        with conn, conn.cursor() as cur:
            cur.execute(
                "DELETE FROM notify_deliveries WHERE customer_id = ANY(%s)", (rows.customers,)
            )
            cur.execute("DELETE FROM notify_channels WHERE target = %s", (target,))
            cur.execute(
                "DELETE FROM alert_acks WHERE alert_id IN"
                " (SELECT alert_id FROM heart_rate_alerts WHERE sink_id = %s)",
                (tag,),
            )
            cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (tag,))
        conn.close()


def _query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _chart(client, name: str) -> dict:
    """The chart by name: the attention table is on the main dashboard, dead deliveries on
    Pipeline Operations."""
    charts = [*client.dashboard_charts(), *client.dashboard_charts(OPERATIONS_DASHBOARD_SLUG)]
    return {chart["slice_name"]: chart for chart in charts}[name]


def _rows(client, chart: dict, customers: list[str]) -> list[dict]:
    """The chart's rows, filtered to `customers` as the Customer filter does (these charts are
    outside the Time range filter's scope)."""
    answer = client.chart_data(build_query_context(chart, customers=customers))
    result = answer["result"][0]
    assert result.get("error") is None, (chart["slice_name"], result.get("error"))
    assert result["rowcount"] < chart["form_data"]["row_limit"]
    assert "customer_id" in {f.get("column") for f in result.get("applied_filters", [])}
    return result["data"]


def test_open_episodes_unacknowledged_first_with_their_age(
    superset_client, notify_rows, superuser_dsn
):
    """The unacknowledged tachycardia (3 hours old) comes before the acknowledged critical episode
    (90 s old, newer and more severe): attention first, then age. The muted one and the ended one
    are not listed."""
    expected = _query(
        superuser_dsn,
        "SELECT alert_id, customer_id, kind, acked_by"
        " FROM alert_attention WHERE is_open AND customer_id = ANY(%s)"
        " ORDER BY attention_rank, started_at",
        (notify_rows.customers,),
    )
    assert [(customer, kind) for _, customer, kind, _ in expected] == [
        (notify_rows.unacked, "tachycardia"),
        (notify_rows.acked, "critical_high"),
    ]
    rows = _rows(superset_client, _chart(superset_client, ATTENTION_CHART), notify_rows.customers)
    assert [
        (r["alert_id"], linked_customer(r["customer_link"]), r["kind"], r["acked_by"]) for r in rows
    ] == expected
    assert [r["acknowledged"] for r in rows] == ["no", "yes"]
    assert rows[0]["age"].startswith("3 h ")
    assert rows[1]["age"] in ("1 min", "2 min")  # opened 90 s before the fixture's insert


def test_dead_deliveries_equal_sql(superset_client, notify_rows, superuser_dsn):
    """Only the dead delivery is listed, with its receiver, its alert and why it died; the
    delivered one is not."""
    expected = _query(
        superuser_dsn,
        "SELECT alert_id, customer_id, target, alert_status, attempts, http_status, last_error"
        " FROM notify_dead_deliveries WHERE customer_id = ANY(%s) ORDER BY dead_at DESC",
        (notify_rows.customers,),
    )
    assert len(expected) == 1
    assert expected[0][1] == notify_rows.unacked
    rows = _rows(superset_client, _chart(superset_client, DEAD_CHART), notify_rows.customers)
    assert [
        (
            r["alert_id"],
            linked_customer(r["customer_link"]),
            r["target"],
            r["alert_status"],
            r["attempts"],
            r["http_status"],
            r["last_error"],
        )
        for r in rows
    ] == expected
    # Another customer's filter: not theirs.
    assert _rows(superset_client, _chart(superset_client, DEAD_CHART), [notify_rows.acked]) == []


@pytest.fixture
def failing_channel(superuser_dsn: str) -> Iterator[tuple[str, str]]:
    """A channel that failed and recovered an hour ago, and is failing again since 10 minutes
    (acknowledged): (the failing notice's alert id, the recovered one's)."""
    tag = f"test-failing-{uuid.uuid4().hex[:8]}"
    failing, recovered = f"{tag}-now", f"{tag}-before"
    conn = psycopg2.connect(superuser_dsn)
    try:
        with conn, conn.cursor() as cur:
            channel = insert_webhook_channel(cur, f"http://h/{tag}")
            cur.execute(
                """
                INSERT INTO notify_channel_failures (alert_id, channel_id, channel, started_at,
                    last_failed_at, dead, last_error, ended_at)
                VALUES (%(failing)s, %(channel)s, %(label)s, now() - interval '10 min', now(), 0,
                        '7 deliveries waiting, the oldest for 640 s', NULL),
                       (%(recovered)s, %(channel)s, %(label)s, now() - interval '2 hours',
                        now() - interval '70 min', 3, 'HTTP 410', now() - interval '1 hour')
                """,
                {"failing": failing, "recovered": recovered, "channel": channel,
                 "label": f"{channel} (webhook to http://h)"},
            )  # fmt: skip
            cur.execute("INSERT INTO alert_acks (alert_id, acked_by) VALUES (%s, 'on call')",
                        (failing,))  # fmt: skip
        yield failing, recovered
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM alert_acks WHERE alert_id = %s", (failing,))
            cur.execute("DELETE FROM notify_channel_failures WHERE channel_id = %s", (channel,))
            cur.execute("DELETE FROM notify_channels WHERE id = %s", (channel,))
        conn.close()


def test_failing_channels_come_first_and_equal_sql(superset_client, failing_channel, superuser_dsn):
    """What a delivery_failing notice links to: the channels failing now before those that
    recovered (the older failing one before the newer recovered one), with the latest sign and
    who acknowledged it; the same rows as SQL over notify_channel_failures."""
    expected = _query(
        superuser_dsn,
        "SELECT CASE WHEN f.ended_at IS NULL THEN 'failing' ELSE 'recovered' END, f.channel,"
        " f.dead, f.last_error, k.acked_by, f.alert_id FROM notify_channel_failures f"
        " LEFT JOIN alert_acks k USING (alert_id)"
        " ORDER BY f.ended_at IS NULL DESC, f.started_at DESC LIMIT 100",
    )
    chart = _chart(superset_client, FAILING_CHART)
    answer = superset_client.chart_data(build_query_context(chart))
    result = answer["result"][0]
    assert result.get("error") is None, result.get("error")
    rows = [(r["state"], r["channel"], r["dead"], r["last_error"], r["acked_by"], r["alert_id"])
            for r in result["data"]]  # fmt: skip
    assert rows == expected
    failing, recovered = failing_channel
    ours = [row for row in rows if row[5] in failing_channel]
    assert [(row[0], row[5], row[4]) for row in ours] == [
        ("failing", failing, "on call"), ("recovered", recovered, None)]  # fmt: skip


def test_the_reader_role_reads_both_views(stack, notify_rows):
    """The dashboards' connection (heartbeat_reader) reads the views, never a signing secret."""
    with psycopg2.connect(stack.reader_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM alert_attention WHERE customer_id = ANY(%s)",
            (notify_rows.customers,),
        )
        assert cur.fetchone() == (3,)
        cur.execute(
            "SELECT count(*) FROM notify_dead_deliveries WHERE customer_id = ANY(%s)",
            (notify_rows.customers,),
        )
        assert cur.fetchone() == (1,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT secret FROM notify_channels")

"""What the Superset bundle provisions, as the tests expect it: each dashboard's slug and charts
(viz type and the dataset each reads), the datasets, and the link from an alert table to the
customer dashboard. One place, so every Superset test checks the same catalogue."""

from __future__ import annotations

import html
import re
import urllib.parse

from tests.superset.superset_api import DASHBOARD_SLUG, ROOT

# slice name -> (viz type, table read)
EXPECTED_CHARTS = {
    "Total readings": ("big_number_total", "heart_rate_rollup"),
    "Average heart rate": ("big_number_total", "heart_rate_rollup"),
    "Minimum heart rate": ("big_number_total", "heart_rate_rollup"),
    "Maximum heart rate": ("big_number_total", "heart_rate_rollup"),
    "Average heart rate over time": ("echarts_timeseries_line", "heart_rate_rollup"),
    "Heart-rate distribution": ("echarts_timeseries_bar", "heart_rate_rollup_bins"),
    "Abnormal episodes (open and recent)": ("table", "heart_rate_alerts_recent"),
    "Critical episodes open": ("big_number_total", "heart_rate_alerts"),
    "Warning episodes open": ("big_number_total", "heart_rate_alerts"),
    "Open episodes (critical first, then oldest)": ("table", "heart_rate_alerts_open"),
    "Silent devices": ("table", "heart_rate_silent_open"),
    "Open episodes (unacknowledged first)": ("table", "alert_attention_open"),
}
# The Pipeline Operations dashboard: alert delivery, quarantine and the job's health, kept off the
# main dashboard so that the one a person on call opens stays quick on a first visit.
OPERATIONS_DASHBOARD_SLUG = "pipeline-operations"
OPERATIONS_CHARTS = {
    "Failing channels": ("table", "notify_channel_failures_latest"),
    "Dead deliveries": ("table", "notify_dead_deliveries_latest"),
    "Quarantined readings by reason": ("pie", "rejected_readings"),
    "Latest quarantined readings": ("table", "rejected_readings_latest"),
    "Pipeline throughput (rows/s)": ("echarts_timeseries_line", "pipeline_metrics"),
    "Micro-batch duration (ms)": ("echarts_timeseries_line", "pipeline_metrics"),
    "Kafka lag (messages)": ("echarts_timeseries_line", "pipeline_metrics"),
    "Notifier (deliveries/s, consumer lag)": ("echarts_timeseries_line", "pipeline_metrics"),
    "Read replica lag (bytes, seconds)": ("echarts_timeseries_line", "pipeline_metrics"),
}
NOTIFIER_CHART = "Notifier (deliveries/s, consumer lag)"
REPLICA_CHART = "Read replica lag (bytes, seconds)"
# The customer dashboard's charts: every one is about the one customer its filter picks.
CUSTOMER_DASHBOARD_SLUG = "customer-detail"
CUSTOMER_CHARTS = {
    "Customer readings": ("big_number_total", "heart_rate_rollup"),
    "Customer average heart rate": ("big_number_total", "heart_rate_rollup"),
    "Customer minimum heart rate": ("big_number_total", "heart_rate_rollup"),
    "Customer maximum heart rate": ("big_number_total", "heart_rate_rollup"),
    "Customer heart rate": ("echarts_timeseries_line", "heart_rate_series"),
    "Customer heart-rate distribution": ("echarts_timeseries_bar", "heart_rate_rollup_bins"),
    "Customer episodes": ("table", "heart_rate_alerts_customer"),
    "Customer quarantined messages": ("table", "rejected_readings_latest"),
    "Alert settings": ("table", "customer_alert_thresholds"),
    "Daily resting heart rate": ("echarts_timeseries_line", "customer_resting_days_series"),
    "Personal baseline": ("table", "customer_baseline"),
}
# Charts of the present (open episodes, their counts, silent devices; a customer's settings,
# baseline and daily resting rates): outside their dashboard's Time range filter.
NOT_TIME_RANGED = {
    "Critical episodes open",
    "Warning episodes open",
    "Open episodes (critical first, then oldest)",
    "Silent devices",
    "Open episodes (unacknowledged first)",
    "Failing channels",
    "Dead deliveries",
    "Alert settings",
    "Daily resting heart rate",
    "Personal baseline",
}
# Each dashboard's slug, title, charts and the charts outside its Customer filter (None: it has no
# Customer filter).
DASHBOARDS = {
    DASHBOARD_SLUG: ("Heart Rate Monitoring", EXPECTED_CHARTS, set()),
    OPERATIONS_DASHBOARD_SLUG: ("Pipeline Operations", OPERATIONS_CHARTS, None),
}
# The tables, views and virtual datasets the main and operations dashboards' charts read; only the
# customer dashboard's series reads raw readings (one customer, up to 6 hours).
CHART_DATASETS = {table for _, table in [*EXPECTED_CHARTS.values(), *OPERATIONS_CHARTS.values()]}
# Every dataset of the bundle: the charts', the customer pickers' and the physical tables kept
# for exploring (raw readings, minute rollups and their bins, all episodes).
DATASETS = (
    CHART_DATASETS
    | {table for _, table in CUSTOMER_CHARTS.values()}
    | {
        "heart_rate_customers",
        "heart_rate_customer_priority",
        "heart_rate_readings",
        "heart_rate_minute",
        "heart_rate_minute_bins",
        "heart_rate_alerts",
    }
)
NOT_PER_CUSTOMER = {
    "rejected_readings",
    "rejected_readings_latest",
    "pipeline_metrics",
    "notify_channel_failures_latest",  # channels, not customers
}
ALL_CHARTS = [*EXPECTED_CHARTS, *OPERATIONS_CHARTS, *CUSTOMER_CHARTS]
BUNDLE = ROOT / "superset" / "bundle"


def linked_customer(link: str) -> str:
    """The customer a customer_link cell names, checked to open the customer dashboard with the
    Customer filter set to that same customer."""
    match = re.fullmatch(
        r'<a href="/superset/dashboard/customer-detail/\?native_filters=([^"]+)">([^<]+)</a>', link
    )
    assert match, link
    customer = html.unescape(match.group(2))
    state = urllib.parse.unquote(match.group(1))
    assert f"filters:!((col:customer_id,op:IN,val:!('{customer}')))" in state, state
    assert state.startswith("(NATIVE_FILTER-customer:"), state
    return customer

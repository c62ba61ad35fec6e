"""What a notification says: the webhook bodies (json, slack) and the e-mail, each carrying the
customer (for a delivery_failing notice, the channel), kind, severity, figures, time, a dashboard
link and how to acknowledge."""

from __future__ import annotations

import html
import json
from email.message import EmailMessage
from urllib.parse import quote

from heartbeat_contract.alerts import ALL_CUSTOMERS, DELIVERY_FAILING, OPEN

# How people acknowledge from a shell (the coordinator also wires it as `heartbeat-ops alerts ack`).
ACK_COMMAND = "heartbeat-ops alerts ack {alert_id} --by NAME"
FIGURES = ("extreme_bpm", "readings", "threshold_bpm", "baseline_bpm")


def _rison_string(value: str) -> str:
    return "'" + value.replace("!", "!!").replace("'", "!'") + "'"


def dashboard_link(dashboard_url: str, customer_id: str) -> str:
    """The customer dashboard filtered to this customer (the link sql/007's alert table makes);
    the main dashboard for an episode of the whole feed."""
    base = dashboard_url.rstrip("/")
    if customer_id == ALL_CUSTOMERS:
        return f"{base}/superset/dashboard/heart-rate-monitoring/"
    value = _rison_string(customer_id)
    native_filters = (
        "(NATIVE_FILTER-customer:(extraFormData:(filters:!((col:customer_id,op:IN,val:!("
        f"{value})))),filterState:(value:!({value})),id:NATIVE_FILTER-customer,ownState:()))"
    )
    return f"{base}/superset/dashboard/customer-detail/?native_filters={quote(native_filters)}"


def operations_link(dashboard_url: str) -> str:
    """The Pipeline Operations dashboard: its Failing channels table, and the Dead deliveries
    table of what a failing channel missed."""
    return f"{dashboard_url.rstrip('/')}/superset/dashboard/pipeline-operations/"


def ack_url(ack_base_url: str, alert_id: str) -> str:
    return f"{ack_base_url}/alerts/{alert_id}/ack"


def headline(event: dict[str, object]) -> str:
    """One line: `CRITICAL critical_high open: customer C0042`, or for a failing channel
    `CRITICAL delivery_failing open: channel 3 (webhook to https://hooks.example.org)`."""
    if event["kind"] == DELIVERY_FAILING:
        who = f"channel {event.get('channel')}"
    elif event["customer_id"] == ALL_CUSTOMERS:
        who = "customer all customers"
    else:
        who = f"customer {event['customer_id']}"
    return f"{str(event['severity']).upper()} {event['kind']} {event['status']}: {who}"


def _figures(event: dict[str, object]) -> list[tuple[str, str]]:
    rows = [("started", str(event.get("started_at")))]
    if event.get("ended_at"):
        rows.append(("ended", str(event["ended_at"])))
    if event["kind"] == DELIVERY_FAILING:
        rows.append(("last sign of failing", str(event.get("last_reading_at"))))
        rows.append(("dead deliveries", str(event.get("readings"))))
        rows.append(("last error", str(event.get("last_error"))))
        return rows
    rows.append(("last reading", str(event.get("last_reading_at"))))
    rows += [(name.replace("_", " "), str(event[name])) for name in FIGURES if event.get(name)]
    return rows


def webhook_body(
    event: dict[str, object], *, fmt: str, delivery_id: str, sent_at: int, links: dict[str, str]
) -> bytes:
    """The raw bytes that are signed and posted. `sent_at` is in the signed body too, so a
    receiver can trust the X-Heartbeat-Timestamp it checks for freshness."""
    if fmt == "slack":
        facts = ", ".join(f"{name} {value}" for name, value in _figures(event))
        text = f"*{headline(event)}*\n{facts}\n<{links['dashboard']}|{links['dashboard_name']}>" + (
            f" · acknowledge: `{links['ack_command']}`" if event["status"] == OPEN else ""
        )
        payload: dict[str, object] = {"text": text}
    else:
        payload = {
            **event,
            "delivery_id": delivery_id,
            "sent_at": sent_at,
            "dashboard_url": links["dashboard"],
            "ack_url": links["ack_url"],
            "ack_command": links["ack_command"],
        }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def email_message(
    event: dict[str, object], *, sender: str, recipient: str, delivery_id: str,
    links: dict[str, str],
) -> EmailMessage:  # fmt: skip
    """Plain text and HTML alternatives of the same facts."""
    message = EmailMessage()
    message["Subject"] = f"[heartbeat] {headline(event)}"
    message["From"] = sender
    message["To"] = recipient
    message["X-Heartbeat-Delivery"] = delivery_id
    message["X-Heartbeat-Alert"] = str(event["alert_id"])
    subject = (
        ("channel", str(event.get("channel")))
        if event["kind"] == DELIVERY_FAILING
        else ("customer", str(event["customer_id"]))
    )
    rows = [
        subject,
        ("kind", str(event["kind"])),
        ("severity", str(event["severity"])),
        ("status", str(event["status"])),
        *_figures(event),
        ("alert id", str(event["alert_id"])),
    ]
    text = "\n".join(f"{name}: {value}" for name, value in rows)
    text += f"\n\n{links['dashboard_name']}: {links['dashboard']}\n"
    if event["status"] == OPEN:
        text += f"Acknowledge: {links['ack_command']}\n  or POST {links['ack_url']}\n"
    message.set_content(text)
    table = "".join(
        f"<tr><th align='left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in rows
    )
    ack = (
        f"<p>Acknowledge: <code>{html.escape(links['ack_command'])}</code></p>"
        if event["status"] == OPEN
        else ""
    )
    message.add_alternative(
        f"<html><body><h3>{html.escape(headline(event))}</h3><table>{table}</table>"
        f'<p><a href="{html.escape(links["dashboard"])}">'
        f"{html.escape(links['dashboard_name'])}</a></p>{ack}"
        "</body></html>",
        subtype="html",
    )
    return message


def links_for(event: dict[str, object], *, dashboard_url: str, ack_base_url: str) -> dict[str, str]:
    alert = str(event["alert_id"])
    if event["kind"] == DELIVERY_FAILING:
        dashboard, name = operations_link(dashboard_url), "Pipeline Operations (dead deliveries)"
    else:
        dashboard, name = (
            dashboard_link(dashboard_url, str(event["customer_id"])),
            "Customer dashboard",
        )
    return {
        "dashboard": dashboard,
        "dashboard_name": name,
        "ack_url": ack_url(ack_base_url, alert),
        "ack_command": ACK_COMMAND.format(alert_id=alert),
    }

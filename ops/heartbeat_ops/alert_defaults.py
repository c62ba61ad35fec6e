"""Write the alert rules' global defaults into the database, from the settings.

The dashboards show a customer's effective thresholds (their own setting, else the global
default). The defaults live in the settings (HEARTBEAT_ALERT_*, HEARTBEAT_BASELINE_*,
HEARTBEAT_SILENT_AFTER_SECONDS); this copies them into the one-row table `alert_defaults`
(sql/011) at every provisioning, so SQL never carries a second copy of a default.
"""

from __future__ import annotations

from heartbeat_contract.settings import Settings

UPSERT = """
INSERT INTO alert_defaults (singleton, low_bpm, high_bpm, sustain_seconds, baseline_margin_bpm,
                            baseline_elevated_days, baseline_min_days, silent_after_seconds,
                            updated_at)
VALUES (true, %(low)s, %(high)s, %(sustain)s, %(margin)s, %(days)s, %(min_days)s, %(silent)s,
        now())
ON CONFLICT (singleton) DO UPDATE SET
    low_bpm = EXCLUDED.low_bpm, high_bpm = EXCLUDED.high_bpm,
    sustain_seconds = EXCLUDED.sustain_seconds,
    baseline_margin_bpm = EXCLUDED.baseline_margin_bpm,
    baseline_elevated_days = EXCLUDED.baseline_elevated_days,
    baseline_min_days = EXCLUDED.baseline_min_days,
    silent_after_seconds = EXCLUDED.silent_after_seconds, updated_at = now()
"""


def parameters(settings: Settings) -> dict[str, float | int]:
    """The row's values, by the settings' names."""
    return {
        "low": settings.alert_low_bpm,
        "high": settings.alert_high_bpm,
        "sustain": settings.alert_sustain_seconds,
        "margin": settings.baseline_margin_bpm,
        "days": settings.baseline_elevated_days,
        "min_days": settings.baseline_min_days,
        "silent": settings.silent_after_seconds,
    }


def write(cur, settings: Settings) -> None:
    """Upsert the one row (a cursor of a role allowed to write it: provisioning's superuser)."""
    cur.execute(UPSERT, parameters(settings))

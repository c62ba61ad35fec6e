"""The notifier's own figures, served on /metrics in Prometheus' text format: deliveries per
channel and outcome, delivery latency (event published -> delivered), consumer lag, what
each channel still owes (its backlog in the delivery log) and which channels are failing (an open
delivery_failing notice). The same
figures, per interval, go to pipeline_metrics (pipeline_figures.py)."""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of `values` (share in 0..1)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Interval:
    """What happened since the last interval was taken: for one pipeline_metrics row."""

    events: int = 0  # alert events read (malformed ones included)
    deliveries: Counter[tuple[int, str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, delivered ones


class Metrics:
    def __init__(self, latency_window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.deliveries: Counter[tuple[int, str]] = Counter()  # (channel, outcome) -> count
        self.attempts: Counter[int] = Counter()
        self.malformed = 0
        self.rejoins = 0  # stuck consumers replaced (service.stalled)
        self.rebalances = 0  # rebalances this member has begun (its partitions revoked)
        self.latencies: deque[float] = deque(maxlen=latency_window)
        self.lag: dict[str, int] = {}  # "topic/partition" -> messages behind the end
        self.in_flight = 0
        # channel -> (pending deliveries, seconds the oldest has waited), re-read with the lag
        self.backlog: dict[int, tuple[int, float]] = {}
        self.failing: set[int] = set()  # channels with an open delivery_failing notice, likewise
        self.channels = 0  # channels in use (re-read from PostgreSQL every second)
        self._interval = Interval()

    def event_read(self) -> None:
        with self._lock:
            self._interval.events += 1

    def take_interval(self) -> Interval:
        """The figures since the previous call, and start a new interval."""
        with self._lock:
            taken, self._interval = self._interval, Interval()
            return taken

    def delivery(self, channel_id: int, outcome: str, latency: float | None = None) -> None:
        with self._lock:
            self.deliveries[(channel_id, outcome)] += 1
            self._interval.deliveries[(channel_id, outcome)] += 1
            if latency is not None:
                self.latencies.append(latency)
                self._interval.latencies.append(latency)

    def attempt(self, channel_id: int) -> None:
        with self._lock:
            self.attempts[channel_id] += 1

    def render(self) -> str:
        with self._lock:
            lines = ["# TYPE heartbeat_notifier_deliveries_total counter"]
            for (channel, outcome), count in sorted(self.deliveries.items()):
                lines.append(
                    f'heartbeat_notifier_deliveries_total{{channel="{channel}",'
                    f'outcome="{outcome}"}} {count}'
                )
            lines.append("# TYPE heartbeat_notifier_attempts_total counter")
            for channel, count in sorted(self.attempts.items()):
                lines.append(f'heartbeat_notifier_attempts_total{{channel="{channel}"}} {count}')
            lines.append("# TYPE heartbeat_notifier_delivery_latency_seconds summary")
            latencies = list(self.latencies)
            for share in (0.5, 0.99):
                value = percentile(latencies, share)
                if value is not None:
                    lines.append(
                        f'heartbeat_notifier_delivery_latency_seconds{{quantile="{share}"}}'
                        f" {value:.3f}"
                    )
            lines.append(f"heartbeat_notifier_delivery_latency_seconds_count {len(latencies)}")
            lines.append("# TYPE heartbeat_notifier_consumer_lag gauge")
            for partition, lag in sorted(self.lag.items()):
                lines.append(f'heartbeat_notifier_consumer_lag{{partition="{partition}"}} {lag}')
            lines.append(f"heartbeat_notifier_in_flight {self.in_flight}")
            backlog = sorted(self.backlog.items())
            lines.append("# TYPE heartbeat_notifier_pending_deliveries gauge")
            for channel, (pending, _) in backlog:
                lines.append(
                    f'heartbeat_notifier_pending_deliveries{{channel="{channel}"}} {pending}'
                )
            lines.append("# TYPE heartbeat_notifier_oldest_pending_seconds gauge")
            for channel, (_, oldest) in backlog:
                lines.append(
                    f'heartbeat_notifier_oldest_pending_seconds{{channel="{channel}"}} {oldest:.1f}'
                )
            lines.append("# TYPE heartbeat_notifier_channel_failing gauge")
            for channel in sorted(self.failing):
                lines.append(f'heartbeat_notifier_channel_failing{{channel="{channel}"}} 1')
            lines.append(f"heartbeat_notifier_channels {self.channels}")
            lines.append(f"heartbeat_notifier_malformed_events_total {self.malformed}")
            lines.append(f"heartbeat_notifier_stalled_rejoins_total {self.rejoins}")
            lines.append(f"heartbeat_notifier_rebalances_total {self.rebalances}")
            return "\n".join(lines) + "\n"

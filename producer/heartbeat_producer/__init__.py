"""The heart-rate producer: a pure simulator of customers' readings and a Kafka publisher.

Modules, one job each: physiology (one heart's curve), quota (exact outlier shares), malformed
(broken messages with their expected reason), encoding (contract bytes, fast), simulator (the
population as a message stream), pacing, publisher (kafka-python), ledger, runner, workers
(one run over several processes), cli, and mix (known_mix() for end-to-end tests).
"""

from .config import PublisherSettings, RunSettings, SimulationConfig
from .mix import known_mix
from .simulator import VALID, Message, Simulator, customer_ids

__all__ = [
    "VALID",
    "Message",
    "PublisherSettings",
    "RunSettings",
    "SimulationConfig",
    "Simulator",
    "customer_ids",
    "known_mix",
]

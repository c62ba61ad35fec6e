"""The simulated population as a pure, reproducible stream of Kafka messages (no Kafka here).

Customers take turns (round robin), so at `rate` readings per second each customer reads every
customers/rate seconds; the default rate (one per customer per second) gives one reading per
customer per second. The clock is simulated: message i is stamped start + i/rate, bumped by a
millisecond when needed so each customer's timestamps strictly increase. The same config, start
and rate always give the same bytes; the CLI paces the wall clock to this simulated clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from random import Random
from typing import NamedTuple

from heartbeat_contract import MAX_VALID_BPM, MIN_VALID_BPM, OUT_OF_RANGE

from .config import LEGACY_FORMAT, SimulationConfig
from .encoding import LegacyEncoder, ReadingEncoder
from .malformed import Malformer, Reading
from .physiology import CriticalEpisode, CriticalEpisodes, Heart, Profile, sensor_glitch
from .quota import DEFAULT_BLOCK, INVALID, MALFORMED, outlier_plan

VALID = "valid"  # the ledger's outcome for a message the streaming job must accept


class Message(NamedTuple):
    """One Kafka message and what the streaming job must make of it."""

    key: bytes  # always the simulated customer's id, even when the body's customer_id is broken
    value: bytes
    outcome: str  # VALID or a quarantine reason from heartbeat_contract.QUARANTINE_REASONS
    customer_id: str
    timestamp_ms: int  # the simulated event time (epoch milliseconds) behind the message
    heart_rate: int  # the simulated bpm behind the message (the glitch value if out of range)
    abnormal: bool  # valid, and part of an abnormal episode (outside the normal band)


def customer_ids(count: int, prefix: str = "C") -> list[str]:
    """C0001, C0002, ...: zero-padded to 4 digits, or wider for very large populations.

    Another prefix keeps several producers' customers apart (tests, soak runs side by side).
    """
    width = max(4, len(str(count)))
    return [f"{prefix}{number:0{width}d}" for number in range(1, count + 1)]


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


class Simulator:
    """An endless, deterministic stream of Messages for one population.

    Independent random streams (derived from the seed) drive the hearts, the outlier plan and
    the malformed variants, so turning malformed messages on does not change anyone's curve.
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        start: datetime,
        rate: float | None = None,
        block: int = DEFAULT_BLOCK,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.config = config
        index, shards = shard
        if not 0 <= index < shards <= config.customers:
            raise ValueError(f"shard {index} of {shards} does not fit {config.customers} customers")
        total_rate = float(rate) if rate is not None else float(config.customers)
        if total_rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.start_ms = _epoch_ms(start)
        legacy = config.message_format == LEGACY_FORMAT
        # The legacy format's ids are the integers 1..N; the job stores them as decimal text.
        everyone = (
            [str(n) for n in range(1, config.customers + 1)]
            if legacy
            else customer_ids(config.customers, config.customer_prefix)
        )
        # A shard is every shards-th customer at its share of the rate, so each customer reads
        # as often as in the whole population; its random streams are seeded apart from the
        # others'. Shard 0 of 1 is the whole population, byte for byte as before shards.
        self.ids = everyone[index::shards]
        self.rate = total_rate if shards == 1 else total_rate * len(self.ids) / len(everyone)
        seed = config.seed if shards == 1 else f"{config.seed}/{index}of{shards}"
        heart_rng = Random(f"{seed}:hearts")
        self._hearts = [
            Heart(Profile.draw(heart_rng), heart_rng, config.abnormal_rate) for _ in self.ids
        ]
        critical_rng = Random(f"{seed}:criticals")
        self._criticals = (
            [CriticalEpisodes(critical_rng, config.critical_rate, self.start_ms) for _ in self.ids]
            if config.critical_rate
            else None
        )
        self._glitch_rng = Random(f"{seed}:glitches")
        self._plan = outlier_plan(
            Random(f"{seed}:plan"), config.malformed_rate, config.invalid_rate, block
        )
        self._malformer = Malformer(Random(f"{seed}:malformed"))
        self._encoder = LegacyEncoder(config.legacy_zone) if legacy else ReadingEncoder()
        self._stream = self._messages()

    def __iter__(self) -> Iterator[Message]:
        return self._stream

    def __next__(self) -> Message:
        return next(self._stream)

    def take(self, n: int) -> list[Message]:
        """The next n messages of the stream."""
        return list(islice(self._stream, n))

    def critical_episodes(self) -> list[tuple[str, CriticalEpisode]]:
        """The persistent critical episodes scripted so far, by customer (tests, demos)."""
        if self._criticals is None:
            return []
        return [
            (customer, episode)
            for customer, schedule in zip(self.ids, self._criticals, strict=True)
            for episode in schedule.episodes
        ]

    def _messages(self) -> Iterator[Message]:
        ids, hearts, plan, criticals = self.ids, self._hearts, self._plan, self._criticals
        encode, stamp = self._encoder.encode, self._encoder.timestamp
        customers = len(ids)
        last_ms = [-(2**62)] * customers  # far past: the first reading has no predecessor
        ms_per_message = 1000.0 / self.rate
        start_ms = self.start_ms
        index = 0
        while True:
            slot = index % customers
            customer_id = ids[slot]
            previous = last_ms[slot]
            now_ms = max(start_ms + int(index * ms_per_message), previous + 1)
            last_ms[slot] = now_ms
            heart = hearts[slot]
            bpm = heart.beat((now_ms - previous) / 1000.0 if index >= customers else 0.0)
            if criticals is not None:
                critical = criticals[slot].bpm(now_ms)
                if critical is not None:  # out of range but plausible: quarantined, alerted on
                    bpm = critical
            kind = next(plan)
            if kind == MALFORMED:
                reading = Reading(customer_id, stamp(now_ms), bpm, now_ms)
                value, outcome = self._malformer.make(reading)
                yield Message(customer_id.encode(), value, outcome, customer_id, now_ms, bpm, False)
            elif kind == INVALID:
                bpm = sensor_glitch(self._glitch_rng)
                key, value = encode(customer_id, now_ms, bpm)
                yield Message(key, value, OUT_OF_RANGE, customer_id, now_ms, bpm, False)
            elif not MIN_VALID_BPM <= bpm <= MAX_VALID_BPM:  # a critical episode's reading
                key, value = encode(customer_id, now_ms, bpm)
                yield Message(key, value, OUT_OF_RANGE, customer_id, now_ms, bpm, False)
            else:
                key, value = encode(customer_id, now_ms, bpm)
                yield Message(key, value, VALID, customer_id, now_ms, bpm, heart.in_episode)
            index += 1

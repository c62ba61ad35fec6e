"""A realistic history written straight into PostgreSQL with COPY, for benchmarks and demos.

Streaming weeks of readings through Kafka and Spark takes hours; this takes minutes. The series
come from the producer's own physiology (each customer's activity, wander and abnormal episodes)
and the derived tables from the job's own logic, so what the dashboards show is what the live
pipeline would have stored:

- readings are COPYed, a chunk of time at a time (in event-time order, as the job writes them),
  into a temporary stage, then moved into `heart_rate_readings` by one statement that also
  merges the minute rollups from the rows it inserted (`rollups.move_readings_sql`, the sink's
  own SQL), so the rollups equal SQL over the raw rows;
- alert episodes are folded from each chunk's runs with `episodes.advance`, as the job's batch
  transaction does, and written at the end under their own sink id;
- sensor glitches (`invalid_rate`) become `out_of_range` rows in `rejected_readings`;
- a few customers may be scripted (`CustomerScript`: a profile, level shifts, workouts), e.g. the
  personal-baseline scenario (`baseline_scenario`): a resting rate that rises, one that varies
  day to day, one hard workout.

Every row carries the plan's `tag` (kafka_topic of readings and rejects, sink_id of episodes)
with unique offsets, so `delete` removes exactly what a load wrote.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random

from psycopg2.extensions import connection
from psycopg2.extras import execute_values

from heartbeat_contract import MAX_VALID_BPM, MIN_VALID_BPM, encode_reading
from heartbeat_producer.config import DEFAULT_ABNORMAL_RATE, DEFAULT_INVALID_RATE
from heartbeat_producer.physiology import Heart, Profile, sensor_glitch
from heartbeat_producer.simulator import customer_ids
from heartbeat_stream.sinks.partitions import ensure_for
from heartbeat_stream.sinks.rollups import move_readings_sql
from heartbeat_stream.transforms.episodes import (
    EpisodeChange,
    Thresholds,
    Tracker,
    advance,
    runs_by_customer,
)

from .progress import Progress

DEFAULT_TAG = "history-load"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS history_stage (
    customer_id text, "timestamp" timestamptz, heart_rate smallint,
    kafka_topic text, kafka_partition integer, kafka_offset bigint, ingested_at timestamptz
)"""
_COPY_STAGE = (
    'COPY history_stage (customer_id, "timestamp", heart_rate, kafka_topic, kafka_partition,'
    " kafka_offset, ingested_at) FROM STDIN"
)
ENSURE_PARTITIONS = ensure_for("history_stage")
# The sink's move: the rows actually inserted are added to their minutes, in one statement.
_MOVE = move_readings_sql("history_stage", with_ingested_at=True)
_COPY_REJECTED = (
    "COPY rejected_readings (raw_value, reason, detail, kafka_topic, kafka_partition,"
    " kafka_offset, ingested_at) FROM STDIN"
)
_EPISODES = """
INSERT INTO heart_rate_alerts (sink_id, customer_id, kind, started_at, ended_at, extreme_bpm,
                               readings, last_reading_at, published_at, threshold_bpm)
VALUES %s
ON CONFLICT ON CONSTRAINT heart_rate_alerts_episode DO UPDATE SET
    ended_at = EXCLUDED.ended_at, extreme_bpm = EXCLUDED.extreme_bpm,
    readings = EXCLUDED.readings, last_reading_at = EXCLUDED.last_reading_at, updated_at = now()
"""


@dataclass(frozen=True)
class Shift:
    """`bpm` added to the customer's level (every activity) from `start` until `end`."""

    start: datetime
    end: datetime
    bpm: float


@dataclass(frozen=True)
class Workout:
    """Exercise from `start` for `seconds`, whatever the customer was doing."""

    start: datetime
    seconds: float


@dataclass(frozen=True)
class CustomerScript:
    """What the loader imposes on one customer on top of the physiology's own randomness."""

    profile: Profile | None = None  # None: the one drawn for the customer
    shifts: tuple[Shift, ...] = ()
    workouts: tuple[Workout, ...] = ()

    def offset_at(self, moment: datetime) -> float:
        return sum(s.bpm for s in self.shifts if s.start <= moment < s.end)


# The personal-baseline scenario's customers (slots: H0001, H0002, H0003 with the default prefix).
SHIFTED, VARYING, WORKOUT = 0, 1, 2
SCENARIO_PROFILE = Profile(baseline=66.0, variability=1.5, sleep_drop=9.0, exercise_rise=45.0)
SCENARIO_SHIFT_BPM = 8.0
SCENARIO_VARIATION_BPM = 3.0
SCENARIO_WORKOUT_SECONDS = 3 * 3600.0


# VARYING's offsets, one a day in turn: any 7 days running have a median of exactly 0.
SCENARIO_VARIATION = (3.0, -3.0, 1.0, -1.0, 2.0, -2.0, 0.0)


def baseline_scenario(end: datetime, days: float, seed: int = 0) -> dict[int, CustomerScript]:
    """Three scripted customers for the personal baseline (README, "Personal baseline"), with
    the same steady profile, judged on the last two whole UTC days before `end`:
    - SHIFTED: resting rate +8 bpm from the start of those two days on (one alert expected);
    - VARYING: every UTC day its own offset, in turn +3, -3, +1, -1, +2, -2, 0 bpm (starting at a
      place drawn from `seed`), and +3 on both of those days: ordinary day-to-day variation at
      its top two days running (no alert);
    - WORKOUT: one hard 3-hour workout across the midnight between those two days (no alert).
    """
    midnight = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    judged = midnight - timedelta(days=2)
    first = (end - timedelta(days=days)).astimezone(UTC)
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    turn = Random(f"{seed}:baseline-scenario").randrange(len(SCENARIO_VARIATION))
    variation = []
    while day < end:
        bpm = (
            SCENARIO_VARIATION_BPM
            if day >= judged
            else SCENARIO_VARIATION[turn % len(SCENARIO_VARIATION)]
        )
        variation.append(Shift(day, day + timedelta(days=1), bpm))
        day += timedelta(days=1)
        turn += 1
    workout_start = midnight - timedelta(days=1, seconds=SCENARIO_WORKOUT_SECONDS / 2)
    return {
        SHIFTED: CustomerScript(SCENARIO_PROFILE, shifts=(Shift(judged, end, SCENARIO_SHIFT_BPM),)),
        VARYING: CustomerScript(SCENARIO_PROFILE, shifts=tuple(variation)),
        WORKOUT: CustomerScript(
            SCENARIO_PROFILE, workouts=(Workout(workout_start, SCENARIO_WORKOUT_SECONDS),)
        ),
    }


@dataclass(frozen=True)
class HistoryPlan:
    """Who, how long and how dense: `customers` each read every `interval_seconds` (their
    phases spread evenly) for `days` ending at `end`."""

    customers: int = 1000
    days: float = 7.0
    interval_seconds: float = 60.0
    end: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    seed: int = 0
    abnormal_rate: float = DEFAULT_ABNORMAL_RATE
    invalid_rate: float = DEFAULT_INVALID_RATE
    tag: str = DEFAULT_TAG
    # Not the live producer's "C": delete() removes the rollups of the tag's customers whole.
    customer_prefix: str = "H"
    partitions: int = 3
    chunk_readings: int = 200_000
    thresholds: Thresholds = field(default_factory=Thresholds)
    scripts: Mapping[int, CustomerScript] = field(default_factory=dict)  # by customer slot

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days <= 0 or self.interval_seconds <= 0:
            raise ValueError("customers, days and interval_seconds must be positive")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")

    @classmethod
    def for_readings(cls, readings: int, customers: int, days: float, **kwargs) -> HistoryPlan:
        """The plan whose interval gives about `readings` messages over `days`."""
        return cls(
            customers=customers,
            days=days,
            interval_seconds=days * 86_400 * customers / readings,
            **kwargs,
        )

    @property
    def steps(self) -> int:
        """Readings per customer."""
        return int(self.days * 86_400 / self.interval_seconds)

    @property
    def messages(self) -> int:
        """Readings and glitches together."""
        return self.steps * self.customers

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.steps * self.interval_seconds)


@dataclass
class LoadSummary:
    readings: int = 0
    rejected: int = 0
    minutes: int = 0
    episodes: int = 0
    seconds: float = 0.0


@dataclass
class _Chunk:
    readings: io.StringIO = field(default_factory=io.StringIO)
    rejected: io.StringIO = field(default_factory=io.StringIO)
    rows: list[tuple[str, datetime, int]] = field(default_factory=list)
    messages: int = 0


def _chunks(plan: HistoryPlan) -> Iterator[_Chunk]:
    """The history in event-time order, `chunk_readings` messages at a time, as COPY text."""
    ids = customer_ids(plan.customers, plan.customer_prefix)
    heart_rng = Random(f"{plan.seed}:hearts")
    scripts = plan.scripts
    hearts = []
    for slot in range(len(ids)):
        profile = Profile.draw(heart_rng)  # drawn for every slot: others' curves stay the same
        script = scripts.get(slot)
        if script and script.profile:
            profile = script.profile
        hearts.append(Heart(profile, heart_rng, plan.abnormal_rate))
    workouts = {slot: list(script.workouts) for slot, script in scripts.items()}
    glitch_rng = Random(f"{plan.seed}:glitches")
    start_ms = (plan.start - _EPOCH) // timedelta(milliseconds=1)
    interval_ms = plan.interval_seconds * 1000
    phases = [int(interval_ms * slot / plan.customers) for slot in range(plan.customers)]
    offsets = [0] * plan.partitions
    steps_per_chunk = max(1, plan.chunk_readings // plan.customers)
    tag, invalid_rate = plan.tag, plan.invalid_rate
    for first in range(0, plan.steps, steps_per_chunk):
        chunk = _Chunk()
        write_reading, write_rejected = chunk.readings.write, chunk.rejected.write
        append = chunk.rows.append
        for step in range(first, min(first + steps_per_chunk, plan.steps)):
            dt = plan.interval_seconds if step else 0.0
            base_ms = start_ms + int(step * interval_ms)
            for slot, customer in enumerate(ids):
                at = _EPOCH + timedelta(milliseconds=base_ms + phases[slot])
                stamp = at.isoformat()
                if slot in scripts:
                    _apply_script(hearts[slot], scripts[slot], workouts[slot], at)
                bpm = hearts[slot].beat(dt)
                partition = slot % plan.partitions
                offset = offsets[partition]
                offsets[partition] = offset + 1
                if invalid_rate and glitch_rng.random() < invalid_rate:
                    bpm = sensor_glitch(glitch_rng)
                    raw = encode_reading(customer, at, bpm)[1].decode()  # as a device sends it
                    detail = f"heart_rate {bpm} is outside {MIN_VALID_BPM}..{MAX_VALID_BPM}"
                    write_rejected(
                        f"{_copy_text(raw)}\tout_of_range\t{detail}\t{tag}\t{partition}\t"
                        f"{offset}\t{stamp}\n"
                    )
                else:
                    write_reading(f"{customer}\t{stamp}\t{bpm}\t{tag}\t{partition}\t{offset}\t")
                    write_reading(f"{stamp}\n")
                    append((customer, at, bpm))
                chunk.messages += 1
        yield chunk


def _apply_script(
    heart: Heart, script: CustomerScript, pending: list[Workout], moment: datetime
) -> None:
    """Set the heart's scripted offset for this moment; start a workout whose time has come."""
    heart.offset = script.offset_at(moment)
    while pending and pending[0].start <= moment:
        heart.exercise(pending.pop(0).seconds)


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def load(conn: connection, plan: HistoryPlan, *, show_progress: bool = True) -> LoadSummary:
    """Write the plan's history; one transaction per chunk, episodes at the end.

    Loading the same tag twice adds nothing new to readings (their provenance is the key) but
    would count them into the rollups again only if they were inserted: the move merges only
    the rows it actually inserted, so a re-run is harmless.
    """
    started = time.monotonic()
    summary = LoadSummary()
    trackers: dict[str, Tracker | None] = {}
    episodes: dict[tuple[str, str, datetime], EpisodeChange] = {}
    progress = Progress(f"loading {plan.tag}", plan.messages) if show_progress else None
    thresholds = plan.thresholds
    with conn.cursor() as cur:
        cur.execute(_STAGE)
        conn.commit()
        for chunk in _chunks(plan):
            chunk.readings.seek(0)
            chunk.rejected.seek(0)
            with conn:
                cur.execute("TRUNCATE history_stage")
                cur.copy_expert(_COPY_STAGE, chunk.readings)
                cur.execute(ENSURE_PARTITIONS)  # raw readings are partitioned by day (sql/006)
                cur.execute(_MOVE)
                inserted, minutes = cur.fetchone()
                cur.copy_expert(_COPY_REJECTED, chunk.rejected)
                summary.rejected += cur.rowcount
            summary.readings += inserted
            summary.minutes += minutes
            for customer, runs in runs_by_customer(chunk.rows, thresholds).items():
                tracker, changes = advance(trackers.get(customer), runs, thresholds.sustain)
                trackers[customer] = tracker
                for change in changes:
                    episodes[(customer, change.kind, change.started_at)] = change
            if progress:
                progress.advance(chunk.messages)
        with conn:
            execute_values(
                cur,
                _EPISODES,
                [
                    (plan.tag, customer, *_episode_values(e), thresholds.threshold_bpm(e.kind))
                    for (customer, *_), e in episodes.items()
                ],
                page_size=1000,
            )
            cur.execute("DROP TABLE history_stage")
    summary.episodes = len(episodes)
    if progress:
        progress.close()
    summary.seconds = time.monotonic() - started
    return summary


def _episode_values(e: EpisodeChange) -> tuple:
    """An episode's columns after sink_id and customer_id; published_at is set (to its last
    reading) so that no outbox ever sends history as a new alert."""
    return (e.kind, e.started_at, e.ended_at, e.extreme_bpm, e.readings, e.last_reading_at,
            e.last_reading_at)  # fmt: skip


def delete(conn: connection, tag: str = DEFAULT_TAG) -> int:
    """Remove every row a load with this tag wrote; returns the readings deleted.

    Rollups are removed for the customers the tag's readings belong to.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM heart_rate_minute WHERE customer_id IN"
            " (SELECT DISTINCT customer_id FROM heart_rate_alerts WHERE sink_id = %s"
            "  UNION SELECT DISTINCT customer_id FROM heart_rate_readings WHERE kafka_topic = %s)",
            (tag, tag),
        )
        cur.execute("DELETE FROM heart_rate_alerts WHERE sink_id = %s", (tag,))
        cur.execute("DELETE FROM rejected_readings WHERE kafka_topic = %s", (tag,))
        cur.execute("DELETE FROM heart_rate_readings WHERE kafka_topic = %s", (tag,))
        return cur.rowcount

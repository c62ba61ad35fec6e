"""Alert episodes: sustained tachycardia or bradycardia, one episode per sustained condition.

Two halves, both pure. `reading_runs` (Spark) compresses a micro-batch of readings into runs of
consecutive same-class readings per customer. `advance` (Python) folds those runs into each
customer's tracker, carried between batches in PostgreSQL, and says which episodes opened,
grew or closed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

TACHYCARDIA = "tachycardia"
BRADYCARDIA = "bradycardia"


@dataclass(frozen=True)
class Thresholds:
    high_bpm: int = 120  # above this is tachycardia
    low_bpm: int = 50  # below this is bradycardia
    sustain: timedelta = timedelta(seconds=60)  # from first to latest abnormal reading


def reading_runs(readings: DataFrame, thresholds: Thresholds) -> DataFrame:
    """Runs of consecutive readings of one class (kind NULL = normal), per customer.

    Columns: customer_id, run, kind, started_at, last_reading_at, extreme_bpm, readings.
    `run` orders a customer's runs in event time.
    """
    kind = F.when(F.col("heart_rate") > thresholds.high_bpm, F.lit(TACHYCARDIA)).when(
        F.col("heart_rate") < thresholds.low_bpm, F.lit(BRADYCARDIA)
    )
    in_time = Window.partitionBy("customer_id").orderBy("timestamp", "heart_rate")
    classed = readings.select(
        "customer_id", "timestamp", "heart_rate", F.coalesce(kind, F.lit("")).alias("_class")
    )
    changed = (
        F.lag("_class").over(in_time).isNull() | (F.lag("_class").over(in_time) != F.col("_class"))
    ).cast("int")
    numbered = classed.withColumn("_changed", changed).withColumn(
        "run", F.sum("_changed").over(in_time.rowsBetween(Window.unboundedPreceding, 0))
    )
    return (
        numbered.groupBy("customer_id", "run", "_class")
        .agg(
            F.min("timestamp").alias("started_at"),
            F.max("timestamp").alias("last_reading_at"),
            F.max("heart_rate").alias("_max"),
            F.min("heart_rate").alias("_min"),
            F.count("*").cast("int").alias("readings"),
        )
        .select(
            "customer_id",
            F.col("run").cast("int").alias("run"),
            F.when(F.col("_class") != "", F.col("_class")).alias("kind"),
            "started_at",
            "last_reading_at",
            F.when(F.col("_class") == TACHYCARDIA, F.col("_max"))
            .when(F.col("_class") == BRADYCARDIA, F.col("_min"))
            .cast("int")
            .alias("extreme_bpm"),
            "readings",
        )
    )


@dataclass(frozen=True)
class Run:
    kind: str | None
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int | None
    readings: int


@dataclass(frozen=True)
class Tracker:
    """A customer's abnormal run in progress; `episode_open` once it has lasted long enough."""

    kind: str
    run_started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int
    readings: int
    episode_open: bool = False


@dataclass(frozen=True)
class EpisodeChange:
    """An episode's current state, to upsert by (customer, kind, started_at)."""

    kind: str
    started_at: datetime
    last_reading_at: datetime
    extreme_bpm: int
    readings: int
    ended_at: datetime | None = None


def _more_extreme(kind: str, a: int, b: int) -> int:
    return max(a, b) if kind == TACHYCARDIA else min(a, b)


def _episode(tracker: Tracker, ended_at: datetime | None = None) -> EpisodeChange:
    return EpisodeChange(
        tracker.kind,
        tracker.run_started_at,
        tracker.last_reading_at,
        tracker.extreme_bpm,
        tracker.readings,
        ended_at,
    )


def advance(
    tracker: Tracker | None, runs: list[Run], sustain: timedelta
) -> tuple[Tracker | None, list[EpisodeChange]]:
    """Fold one customer's runs (in event-time order) into its tracker.

    Runs no newer than what the tracker has seen are stale (late data): they are stored as
    readings but do not move alert state backwards.
    """
    changes: dict[tuple[str, datetime], EpisodeChange] = {}
    for run in runs:
        if tracker and run.last_reading_at <= tracker.last_reading_at:
            continue
        if tracker and tracker.kind == run.kind:
            assert run.extreme_bpm is not None
            tracker = replace(
                tracker,
                last_reading_at=run.last_reading_at,
                extreme_bpm=_more_extreme(run.kind, tracker.extreme_bpm, run.extreme_bpm),
                readings=tracker.readings + run.readings,
            )
        else:
            if tracker and tracker.episode_open:  # the condition cleared or flipped
                changes[(tracker.kind, tracker.run_started_at)] = _episode(tracker, run.started_at)
            tracker = None
            if run.kind is not None:
                assert run.extreme_bpm is not None
                tracker = Tracker(
                    run.kind, run.started_at, run.last_reading_at, run.extreme_bpm, run.readings
                )
        if tracker and (
            tracker.episode_open or tracker.last_reading_at - tracker.run_started_at >= sustain
        ):
            tracker = replace(tracker, episode_open=True)
            changes[(tracker.kind, tracker.run_started_at)] = _episode(tracker)
    return tracker, list(changes.values())

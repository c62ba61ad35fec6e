"""Entry point of the streaming job: one query, Kafka -> foreachBatch sink -> PostgreSQL.

I/O lives here and in the sink; classification is a pure DataFrame function (validation), and
rollups and alert state advance inside the sink's one transaction per batch.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from heartbeat_contract.kafka_security import JOB, JOB_GROUP_PREFIX, spark_kafka_options

from .. import config as job_config
from ..sinks.alert_outbox import OutboxPublisher
from ..sinks.readings_sink import ReadingsSink
from ..transforms.validation import parse_messages, with_processing_time
from .baseline import BaselineTimer
from .checkpoint_files import choose_manager
from .metrics import PipelineMetricsListener
from .replay_ahead import replay_batch_recorded_ahead
from .retention import RetentionTimer
from .silence import SilenceTimer

log = logging.getLogger("heartbeat.job")


def source_options(config: job_config.JobConfig) -> dict[str, str]:
    """The Kafka source's reading options, besides the login. Offsets live in the checkpoint,
    not a consumer group (the groups Spark names carry the job's prefix, the only groups its ACLs
    allow). Below `min_offsets_per_trigger` waiting readings a batch waits, at most
    `max_trigger_delay`; the wait never asks for more than a batch may hold."""
    options = {
        "groupIdPrefix": JOB_GROUP_PREFIX,
        "subscribe": config.kafka_topic,
        "startingOffsets": config.starting_offsets,
        "maxOffsetsPerTrigger": str(config.max_offsets_per_trigger),
        "failOnDataLoss": str(config.fail_on_data_loss).lower(),
    }
    if config.min_offsets_per_trigger:
        wait_for = min(config.min_offsets_per_trigger, config.max_offsets_per_trigger)
        options |= {
            "minOffsetsPerTrigger": str(wait_for),
            "maxTriggerDelay": config.max_trigger_delay,
        }
    if config.kafka_min_partitions:
        options["minPartitions"] = str(config.kafka_min_partitions)
    return options


def kafka_source(spark: SparkSession, config: job_config.JobConfig) -> DataFrame:
    """The readings topic as a stream, read as the job's principal."""
    return (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(config, JOB))
        .options(**source_options(config))
        .load()
    )


def start_readings(
    spark: SparkSession, config: job_config.JobConfig, sink: ReadingsSink
) -> StreamingQuery:
    """Classification is part of the stream's plan, built once here: each micro-batch reaches the
    sink already classified (its processing time is the batch's), so a small batch does not
    pay for building the expressions again from Python."""
    messages = parse_messages(
        with_processing_time(kafka_source(spark, config)), naive_zone=config.naive_timestamp_zone
    )
    return (
        messages.writeStream.queryName("readings")
        .foreachBatch(sink)
        .option("checkpointLocation", config.readings_checkpoint)
        .trigger(processingTime=config.trigger_interval)
        .start()
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per callback otherwise
    config = job_config.load()
    spark = SparkSession.builder.appName("heartbeat-stream").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # Timestamps without an offset are parsed as wall-clock in the session zone first.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.streams.addListener(PipelineMetricsListener(config))
    manager = choose_manager(spark, config.checkpoint_dir)
    # One publisher of the alert outbox for the sink and both timers: one producer, and one
    # publish at a time, so no two threads send the same pending events.
    publisher = OutboxPublisher.for_job(config)
    replay_batch_recorded_ahead(spark, config)
    sink = ReadingsSink(config, publisher=publisher)
    query = start_readings(spark, config, sink)
    retention = RetentionTimer(config)
    retention.start()
    silence = SilenceTimer(config, publisher)
    silence.start()
    BaselineTimer(config, publisher).start()  # a daemon thread: it ends with the job
    log.info(
        "streaming %s from %s into %s:%s/%s; checkpoint under %s (%s); trigger %s; "
        "timestamps without offset: %s; commit %s",
        config.kafka_topic,
        config.kafka_bootstrap_servers,
        config.pg_host,
        config.pg_port,
        config.pg_database,
        config.checkpoint_dir,
        f"written by {manager.rsplit('.', 1)[1]}" if manager else "Spark's own file manager",
        config.trigger_interval,
        config.naive_timestamp_zone,
        "overlapped with the next batch's stage" if config.overlap_commit else "after each stage",
    )

    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        # Only flag it: calling into the JVM from a signal handler would re-enter py4j.
        log.info("signal %d: stopping after the current batch", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Raises if any query failed, so spark-submit exits non-zero and the supervisor restarts us.
    # Stopping mid-batch is safe as well: the batch is replayed on restart and the sink skips it.
    while not stopping.is_set():
        if spark.streams.awaitAnyTermination(timeout=1):
            break
        if failure := sink.commits.failure():  # no next batch came to raise it
            raise failure
    retention.stopped.set()
    silence.stopped.set()
    query.stop()
    try:
        sink.close()  # a commit still in flight finishes
    except Exception as error:  # stopping anyway; nothing is lost (replay_ahead)
        log.error("the last batch's commit failed while stopping; the next start runs the batch"
                  " again: %s: %s", type(error).__name__, str(error)[:300])  # fmt: skip
    publisher.close()
    log.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

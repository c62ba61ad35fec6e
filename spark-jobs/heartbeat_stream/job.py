"""Entry point of the streaming job: Kafka source -> ExactlyOnceSink, until stopped.

I/O lives here and in sink.py; everything between is a pure DataFrame function.
"""

from __future__ import annotations

import logging
import signal
import sys

from pyspark.sql import DataFrame, SparkSession

from . import config as job_config
from .sink import ExactlyOnceSink

log = logging.getLogger("heartbeat.job")


def kafka_source(spark: SparkSession, config: job_config.JobConfig) -> DataFrame:
    """The readings topic as a stream; offsets live in the checkpoint, not a consumer group."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", config.kafka_bootstrap_servers)
        .option("subscribe", config.kafka_topic)
        .option("startingOffsets", config.starting_offsets)
        .option("maxOffsetsPerTrigger", config.max_offsets_per_trigger)
        .option("failOnDataLoss", str(config.fail_on_data_loss).lower())
        .load()
    )


def start(spark: SparkSession, config: job_config.JobConfig):
    """Start the query; returns the StreamingQuery."""
    return (
        kafka_source(spark, config)
        .writeStream.queryName("heartbeat-readings")
        .foreachBatch(ExactlyOnceSink(config))
        .option("checkpointLocation", config.checkpoint_dir)
        .trigger(processingTime=config.trigger_interval)
        .start()
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = job_config.load()
    spark = SparkSession.builder.appName("heartbeat-stream").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    query = start(spark, config)
    log.info(
        "streaming %s from %s into %s:%s/%s, checkpoint %s, trigger %s",
        config.kafka_topic,
        config.kafka_bootstrap_servers,
        config.pg_host,
        config.pg_port,
        config.pg_database,
        config.checkpoint_dir,
        config.trigger_interval,
    )

    def stop(signum: int, _frame: object) -> None:
        # Stopping mid-batch is safe: the batch is replayed on restart and the sink dedups it.
        log.info("signal %d: stopping the query", signum)
        query.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    query.awaitTermination()  # raises if the query failed, so the exit code is non-zero
    log.info("query stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A short run of the job's own plan with no services, for the JVM to record which classes it
loads (spark_class_archive.py). Run by spark-submit: the classifier over generated Kafka-shaped
rows, in a stream with a foreachBatch sink, as the job runs it."""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

BATCHES = 3


def main(checkpoint: str) -> None:
    from heartbeat_stream.transforms.validation import parse_messages, with_processing_time

    spark = SparkSession.builder.appName("heartbeat-warmup").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    ticks = spark.readStream.format("rate").option("rowsPerSecond", 50).load()
    kafka_shaped = ticks.select(
        F.lit(None).cast("binary").alias("key"),
        F.format_string(
            '{"customer_id": "W%04d", "timestamp": "%s", "heart_rate": %d}',
            F.col("value") % 100,
            F.date_format("timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
            F.col("value") % 200,
        )
        .cast("binary")
        .alias("value"),
        F.lit("warmup").alias("topic"),
        F.lit(0).alias("partition"),
        F.col("value").alias("offset"),
        F.col("timestamp"),
    )
    done: list[int] = []

    def sink(batch, batch_id: int) -> None:
        batch.write.format("noop").mode("overwrite").save()
        done.append(batch_id)

    query = (
        parse_messages(with_processing_time(kafka_shaped))
        .writeStream.foreachBatch(sink)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    while len(done) < BATCHES:
        time.sleep(0.1)
    query.stop()
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])

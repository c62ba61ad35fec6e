#!/usr/bin/env bash
# spark-submit the streaming job. The one way to start it: `make up` (supervisord) runs this,
# and so does docker compose. Point SPARK_MASTER at a cluster to run it there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${HEARTBEAT_VAR_DIR:-$ROOT/var}"
JARS_DIR="${HEARTBEAT_SPARK_JARS_DIR:-$VAR/jars/spark}"
SPARK_SUBMIT="${SPARK_SUBMIT:-$VAR/venv/bin/spark-submit}"
command -v "$SPARK_SUBMIT" >/dev/null || SPARK_SUBMIT=spark-submit

export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$VAR/venv/bin/python}"
[ -x "$PYSPARK_PYTHON" ] || PYSPARK_PYTHON=python3

jars="$(find "$JARS_DIR" -name '*.jar' | sort | paste -sd, -)"
[ -n "$jars" ] || { echo "no connector jars in $JARS_DIR: run 'make install'" >&2; exit 1; }

# Executors on a cluster need the job's packages: ship them as a zip next to the entry file.
# Built aside and renamed into place only when its bytes change: jobs that start together (the
# tests' workers) must never read it half written, nor rewritten between the two reads Spark
# makes of it at start ("exists and does not match contents" fails the start).
mkdir -p "$VAR/build"
package="$VAR/build/heartbeat-stream.zip"
fresh="$(mktemp "$package.XXXXXX")"
"$PYSPARK_PYTHON" -m zipfile -c "$fresh" \
  "$ROOT/spark-jobs/heartbeat_stream" "$ROOT/contract/heartbeat_contract"
chmod 644 "$fresh"
if cmp -s "$fresh" "$package"; then rm -f "$fresh"; else mv -f "$fresh" "$package"; fi

# Lower priority than the stack's interactive programs (Superset, and the Kafka and PostgreSQL the
# job itself needs): when the cores are short, a dashboard draws first and the job catches up.
nice="${SPARK_NICE:-10}"
[[ "$nice" =~ ^[0-9]+$ && "$nice" -le 19 ]] || { echo "SPARK_NICE must be 0..19, not '$nice'" >&2; exit 2; }

# HotSpot never compiles a method of more than 8,000 bytes of bytecode (DontCompileHugeMethods),
# and Spark's whole-stage code for one stage is one method: the classifier's is 8,084 bytes with
# its fast path (Spark 4.2; 6,792 without it). Left to the interpreter it classified 89,000
# rows/s against 301,000 compiled, slower than the VARIANT-only reading it replaces. Drivers
# (SPARK_SUBMIT_OPTS: a --driver-java-options in SPARK_SUBMIT_EXTRA_ARGS replaces the job's own,
# as the benchmarks' does) and executors alike.
#
# G1 grows the heap whenever the collector's share of a moment's time is high, and a micro-batch
# allocates in a burst: at 100 readings/s the heap grew from 424 to 666 MiB in 20 minutes (RSS
# +25 %) while what survives a full collection stayed at 106 MiB. Collecting a little more before
# growing (GCTimeRatio 4: up to a fifth of the time, against 12's thirteenth) and giving back what
# a marking cycle finds free beyond 40 % keep the heap near what the job holds; a backlog's large
# batches still grow it up to SPARK_DRIVER_MEMORY. A job that lives for a minute pays for them
# at its start (two test files' jobs: 47 -> 55 CPU-s): SPARK_GC_OPTS replaces them (the tests
# give G1's own defaults).
gc="${SPARK_GC_OPTS:--XX:GCTimeRatio=4 -XX:MaxHeapFreeRatio=40}"
jvm="-XX:-DontCompileHugeMethods $gc"
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-} $jvm"

exec nice -n "$nice" "$SPARK_SUBMIT" \
  --master "${SPARK_MASTER:-local[*]}" \
  --name heartbeat-stream \
  --jars "$jars" \
  --py-files "$package" \
  --driver-memory "${SPARK_DRIVER_MEMORY:-1g}" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$ROOT/spark-jobs/log4j2.properties" \
  --conf spark.executor.extraJavaOptions="$jvm" \
  --conf spark.driver.host="$SPARK_LOCAL_IP" \
  --conf spark.driver.bindAddress="$SPARK_LOCAL_IP" \
  --conf spark.sql.shuffle.partitions="${SPARK_SHUFFLE_PARTITIONS:-4}" \
  --conf spark.ui.port="${SPARK_UI_PORT:-4040}" \
  ${SPARK_SUBMIT_EXTRA_ARGS:-} \
  "$ROOT/spark-jobs/run_stream.py"

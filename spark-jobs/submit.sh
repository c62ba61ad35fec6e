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
# The driver's heap is fixed at SPARK_DRIVER_MEMORY and touched at start, as Kafka's is: a
# micro-batch allocates in a burst, and G1 grew a free-sized heap step by step (at 100 readings/s
# 424 -> 666 MiB in 20 minutes, RSS +25 %; with GCTimeRatio=4 and MaxHeapFreeRatio=40 still one
# step every few minutes) while what survives a full collection stayed at ~100 MiB. Fixed, the
# job's memory is what it is at its first batch, and a soak sees only real growth (metaspace,
# threads, native buffers). SPARK_DRIVER_HEAP_OPTS replaces it: the tests' jobs, which live for a
# minute, give -XX:-AlwaysPreTouch (G1 sizes their heap; no gigabyte touched per start). The
# driver only: an executor's heap is spark.executor.memory.
driver_memory="${SPARK_DRIVER_MEMORY:-1g}"
driver_heap="${SPARK_DRIVER_HEAP_OPTS:--Xms$driver_memory -XX:+AlwaysPreTouch}"
jvm="-XX:-DontCompileHugeMethods"
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-} $jvm $driver_heap"

exec nice -n "$nice" "$SPARK_SUBMIT" \
  --master "${SPARK_MASTER:-local[*]}" \
  --name heartbeat-stream \
  --jars "$jars" \
  --py-files "$package" \
  --driver-memory "$driver_memory" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$ROOT/spark-jobs/log4j2.properties" \
  --conf spark.executor.extraJavaOptions="$jvm" \
  --conf spark.driver.host="$SPARK_LOCAL_IP" \
  --conf spark.driver.bindAddress="$SPARK_LOCAL_IP" \
  --conf spark.sql.shuffle.partitions="${SPARK_SHUFFLE_PARTITIONS:-4}" \
  --conf spark.ui.port="${SPARK_UI_PORT:-4040}" \
  ${SPARK_SUBMIT_EXTRA_ARGS:-} \
  "$ROOT/spark-jobs/run_stream.py"

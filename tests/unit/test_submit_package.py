"""submit.sh's package of the job (the zip it passes with --py-files) under jobs that start
together, as the tests' workers start theirs: each start must see one whole, unchanging zip.

Spark reads the zip twice at start (copying it for the driver, then checking the copy), and a
zip rewritten in place between the two failed a job's start in CI ("exists and does not match
contents"). Here spark-submit is a stand-in that reads the zip twice, a moment apart, the way
Spark does, and fails the same way when the two reads differ.

Also the driver's heap submit.sh asks for: fixed at SPARK_DRIVER_MEMORY and touched at start
unless SPARK_DRIVER_HEAP_OPTS says otherwise, and never handed to executors (a stand-in that
prints what it was given)."""

from __future__ import annotations

import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from heartbeat_ops.config import ROOT

pytestmark = pytest.mark.unit

SUBMIT = ROOT / "spark-jobs" / "submit.sh"
STARTS = 8

# Reads the --py-files zip, waits, reads it again: both reads must be the same whole zip.
FAKE_SPARK_SUBMIT = """#!/usr/bin/env bash
set -euo pipefail
while [ "$1" != "--py-files" ]; do shift; done
first="$(sha256sum "$2")"
sleep 0.2
second="$(sha256sum "$2")"
[ "${first%% *}" = "${second%% *}" ] || { echo "exists and does not match contents" >&2; exit 3; }
python3 -m zipfile -t "$2" >/dev/null
"""


# Prints the driver JVM's options (SPARK_SUBMIT_OPTS), the driver memory and the executors' options.
ECHO_SPARK_SUBMIT = """#!/usr/bin/env bash
echo "driver-opts=$SPARK_SUBMIT_OPTS"
while [ $# -gt 0 ]; do
  case "$1" in
    --driver-memory) echo "driver-memory=$2" ;;
    --conf) case "$2" in spark.executor.extraJavaOptions=*) echo "executor-opts=${2#*=}" ;; esac ;;
  esac
  shift
done
"""


@pytest.fixture
def var(tmp_path: Path) -> Path:
    """A var directory of its own: a connector jar for submit.sh to find, the stand-in for
    spark-submit."""
    (tmp_path / "jars" / "spark").mkdir(parents=True)
    (tmp_path / "jars" / "spark" / "connector.jar").write_bytes(b"")
    fake = tmp_path / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _environment(var: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HEARTBEAT_VAR_DIR": str(var),
        "SPARK_SUBMIT": str(var / "spark-submit"),
        "PYSPARK_PYTHON": "python3",
        "SPARK_NICE": "0",
    }


def start_together(var: Path) -> list[subprocess.CompletedProcess[str]]:
    env = _environment(var)
    starts = [
        subprocess.Popen(
            ["bash", str(SUBMIT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTS)
    ]
    finished = []
    for start in starts:
        out, err = start.communicate(timeout=120)
        finished.append(subprocess.CompletedProcess(start.args, start.returncode, out, err))
    return finished


def test_jobs_starting_together_each_read_one_whole_unchanging_package(var):
    for _ in range(3):
        for start in start_together(var):
            assert start.returncode == 0, start.stderr
    package = var / "build" / "heartbeat-stream.zip"
    with zipfile.ZipFile(package) as archive:
        assert "heartbeat_stream/sinks/batch_commit.py" in archive.namelist()
    assert [p.name for p in package.parent.iterdir()] == [package.name]  # no temporary left


def test_a_changed_package_replaces_the_old_one(var):
    package = var / "build" / "heartbeat-stream.zip"
    package.parent.mkdir()
    package.write_bytes(b"an older build")
    for start in start_together(var):
        assert start.returncode == 0, start.stderr
    assert zipfile.is_zipfile(package)


def submitted(var: Path, **settings: str) -> dict[str, str]:
    """What submit.sh hands spark-submit with these settings (the tests' own defaults removed)."""
    (var / "spark-submit").write_text(ECHO_SPARK_SUBMIT)
    env = _environment(var)
    for name in ("SPARK_DRIVER_HEAP_OPTS", "SPARK_DRIVER_MEMORY", "SPARK_SUBMIT_OPTS"):
        env.pop(name, None)
    done = subprocess.run(["bash", str(SUBMIT)], env={**env, **settings}, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


@pytest.mark.parametrize("heap_opts", [None, ""], ids=["unset", "empty"])
def test_the_driver_heap_is_fixed_at_the_driver_memory_and_touched_at_start(var, heap_opts):
    settings = {"SPARK_DRIVER_MEMORY": "1536m"}
    if heap_opts is not None:
        settings["SPARK_DRIVER_HEAP_OPTS"] = heap_opts
    given = submitted(var, **settings)
    assert given["driver-memory"] == "1536m"
    assert "-Xms1536m -XX:+AlwaysPreTouch" in given["driver-opts"]
    assert "-Xms" not in given["executor-opts"] and "PreTouch" not in given["executor-opts"]
    assert "-XX:-DontCompileHugeMethods" in given["executor-opts"]


def test_driver_heap_opts_replace_the_fixed_heap(var):
    given = submitted(var, SPARK_DRIVER_HEAP_OPTS="-XX:-AlwaysPreTouch")
    assert given["driver-memory"] == "1g"
    assert "-Xms" not in given["driver-opts"]
    assert given["driver-opts"].endswith("-XX:-DontCompileHugeMethods -XX:-AlwaysPreTouch")

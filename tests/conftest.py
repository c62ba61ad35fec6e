"""Shared fixtures: the tests' own world (PostgreSQL and Kafka), fresh topics, a real Spark session.

The suite never uses the live stack that `make up` runs: the session starts a PostgreSQL
cluster and a Kafka broker of its own on free ports (tests/support/world.py), provisioned by the
product's own bootstrap, and points every child process's environment at them. When a live
stack of this checkout is running, the session records it at the start and the last test
(tests/test_live_stack_untouched.py) asserts the run left it as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from heartbeat_ops.config import StackConfig, var_dir
from tests.support import figures, kafka, live_stack, schedule, spark_class_archive
from tests.support.world import World

# The JVMs the tests start (each job's spark-submit, the Spark session, the world's Kafka) live for
# seconds to minutes: the C1 compiler alone costs them far less CPU than C2's optimising
# compiles, which are most of a JVM's start on two cores (one job test: 73 s of CPU -> 39 s, same
# result). Set JAVA_TOOL_OPTIONS in the shell (even empty) to run them otherwise.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
# Their jobs' heap is sized as it goes (spark-jobs/submit.sh fixes a long-running job's heap at
# SPARK_DRIVER_MEMORY and touches it at start: a gigabyte per start for a job that lives a
# minute), by the serial collector: G1's own threads cost a job test ~7 % more CPU to its first
# commit (8.1 against 7.3-7.7 CPU-s, two starts each). `make soak` and the benchmarks run the
# product's.
os.environ.setdefault("SPARK_DRIVER_HEAP_OPTS", "-XX:-AlwaysPreTouch -XX:+UseSerialGC")
# The tests' jobs run at a CPU priority between the rest of the tests (0: their Superset, browser
# and databases) and a live stack's job (SPARK_NICE's default, 10). Only where the kernel does not
# group scheduling by session: with kernel.sched_autogroup_enabled=1 (as on this machine) each
# job, in a session of its own, shares the cores evenly with the tests' session and the live stack's
# whatever their nice (README, Tests).
os.environ.setdefault("SPARK_NICE", "5")

LIVE = pytest.StashKey[live_stack.Recorded | None]()
# Where a parallel run keeps the live stack's snapshot for the check that `make test` runs after
# it, in a pytest process of its own (the last of its workers' tests is not the last of the run).
LIVE_SNAPSHOT = var_dir() / "test-live-before.json"

# Collection order: the unit tests first, so their failures show at once; then the units of work
# that took longest last time first (tests/support/schedule.py), so a parallel run's workers
# finish together; the live stack check last, after everything that could have touched it.
SUPERSET_TESTS = "tests/superset/"
SPARK_UNIT_TESTS = "tests/unit/spark/"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--live-snapshot", action="store_true",
        help=f"compare the live stack with the snapshot a parallel run kept ({LIVE_SNAPSHOT}) "
             "instead of recording it now",
    )  # fmt: skip


def _rank(item: pytest.Item, expected: dict[str, float]) -> tuple[int, float]:
    if item.get_closest_marker("live_untouched"):
        return (2, 0.0)
    return schedule.rank(_work_unit(item.nodeid), expected)


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = schedule.expected_seconds()
    items.sort(key=lambda item: _rank(item, expected))  # stable: a unit keeps its tests' order
    if _xdist_worker(config):  # a parallel run's live check runs after it, in its own process
        deselected = [item for item in items if item.get_closest_marker("live_untouched")]
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _work_unit(nodeid: str) -> str:
    """A parallel run's unit of work: a test file (its module fixtures are made once), all of
    tests/superset/ as one (its tests share one Superset, slow to start) and all of
    tests/unit/spark/ as one (one worker's Spark session, started and warmed once, serves them
    all, where each worker that runs one of them starts and warms its own)."""
    path = nodeid.split("::", 1)[0]
    for group in (SUPERSET_TESTS, SPARK_UNIT_TESTS):
        if path.startswith(group):
            return group
    return path


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Units handed out in collection order (unit tests, then the longest first); xdist's own
    `loadgroup` marks do not reach the scheduler under pytest 9, which no longer reads
    `item._nodeid`."""
    from xdist.scheduler import LoadScopeScheduling

    class FileAndSupersetScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return FileAndSupersetScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """The tests' Spark JVMs map one archive of Spark's classes (tests/support/
    spark_class_archive.py), made here once, before a parallel run's workers start; they
    inherit the setting. SPARK_SUBMIT_OPTS set in the shell (even empty) runs them without."""
    if _xdist_worker(config) or "SPARK_SUBMIT_OPTS" in os.environ:
        return
    try:
        archive = spark_class_archive.ensure()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        warning = pytest.PytestWarning(f"the Spark JVMs start without a class archive: {error}")
        config.issue_config_time_warning(warning, stacklevel=2)
        return
    os.environ["SPARK_SUBMIT_OPTS"] = spark_class_archive.java_options(archive)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Record the live stack before any test (or the world's environment) can touch it."""
    config = session.config
    if _xdist_worker(config):
        return  # the controller recorded it
    if config.getoption("--live-snapshot"):
        if not LIVE_SNAPSHOT.exists():
            raise pytest.UsageError(f"--live-snapshot: no {LIVE_SNAPSHOT}; a parallel run keeps it")
        session.stash[LIVE] = live_stack.load_saved(LIVE_SNAPSHOT)
        return
    session.stash[LIVE] = live_stack.record()
    if getattr(config.option, "numprocesses", None):  # the controller of a parallel run
        live_stack.save(session.stash[LIVE], LIVE_SNAPSHOT)


@pytest.fixture(scope="session")
def live(request: pytest.FixtureRequest) -> live_stack.Recorded | None:
    """The live stack as the session (or the parallel run before it) found it (None: not
    running)."""
    return request.session.stash[LIVE]


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    """The suite's own PostgreSQL and Kafka, fresh for this run, stopped at the end.

    Every child process (and Settings()) sees the world's location and credentials: a test that
    runs `heartbeat-ops` or the producer with the plain environment reaches the world, never
    the live stack.
    """
    began = time.monotonic()
    world = World.create()  # wiped, initdb, storage format
    prepared = time.monotonic() - began
    try:
        started = world.start()  # both nodes up, provisioned
        figures.record("the tests' world", prepare_s=round(prepared, 1),
                       start_s=round(started, 1), under=str(world.root))  # fmt: skip
        with pytest.MonkeyPatch.context() as patch:
            for name, value in world.environment().items():
                patch.setenv(name, value)
            yield world
    finally:
        world.stop()


@pytest.fixture(scope="session")
def stack(world: World) -> StackConfig:
    """The stack's settings, pointed at the tests' world: its database, broker and roles."""
    return world.config


@pytest.fixture(scope="session")
def spark_jars() -> list[str]:
    jars = [str(jar) for jar in spark_class_archive.connector_jars()]
    assert jars, "connector jars missing: run `make install`"
    return jars


@pytest.fixture(scope="session")
def spark(spark_jars: list[str]):
    """One local Spark session for the whole run, with the Kafka connector and JDBC driver."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("heartbeat-tests")
        .config("spark.jars", ",".join(spark_jars))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture
def fresh_topic(stack: StackConfig) -> Iterator[str]:
    """A new 3-partition topic of the world per test, deleted afterwards."""
    with kafka.temporary_topic(stack.kafka_bootstrap_servers) as name:
        yield name


@pytest.fixture
def alerts_topic(stack: StackConfig) -> Iterator[str]:
    """A new alerts topic of the world per test (never the world's shared one), deleted
    afterwards: a job given it as KAFKA_ALERTS_TOPIC publishes where only that test reads."""
    with kafka.temporary_topic(stack.kafka_bootstrap_servers, "test-alerts") as name:
        yield name


@pytest.fixture
def app_db(stack: StackConfig) -> Iterator[psycopg2.extensions.connection]:
    """A connection as the job's least-privilege role (HEARTBEAT_APP_USER)."""
    conn = psycopg2.connect(stack.app_dsn)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def tmp_checkpoint(tmp_path: Path) -> str:
    return str(tmp_path / "checkpoint")


# Each unit's time in this run, summed from its tests' phases.
_TOOK: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A parallel run's controller sees every worker's reports."""
    _TOOK[_work_unit(report.nodeid)] += report.duration


def _whole_parallel_run(config: pytest.Config) -> bool:
    """The whole suite (no paths, -k or -m) in parallel: the only run whose figures order the
    next (tests/support/schedule.py)."""
    return (
        bool(getattr(config.option, "numprocesses", None))
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A parallel run's worker hands its figures to the controller, which prints them; the
    controller of a whole run keeps each unit's time for the next run's order."""
    config = session.config
    if _xdist_worker(config):
        config.workeroutput["figures"] = json.loads(json.dumps(figures.FIGURES, default=str))
    elif _whole_parallel_run(config) and session.testsfailed == 0:
        schedule.record(_TOOK)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent under -p no:xdist
def pytest_testnodedown(node, error) -> None:
    figures.FIGURES.extend(getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the reliability figures (recovery times, ledger results) the tests measured."""
    if figures.FIGURES:
        terminalreporter.section("reliability figures")
        for entry in figures.FIGURES:
            values = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("test", "at"))
            terminalreporter.write_line(f"{entry['test']}: {values}")

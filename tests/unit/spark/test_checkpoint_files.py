"""The stream's checkpoint on a local disk is written through Hadoop's FileSystem API
(heartbeat_stream/runtime/checkpoint_files.py): asked of Spark itself, in a real session, which
manager it builds for a path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from heartbeat_stream.runtime.checkpoint_files import (
    FILE_SYSTEM_MANAGER,
    MANAGER_SETTING,
    choose_manager,
    on_local_disk,
)

pytestmark = pytest.mark.unit

FILE_CONTEXT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileContextBasedCheckpointFileManager"
)


@pytest.fixture
def session(spark) -> Iterator[object]:
    """The run's session with the setting unset before and after (it is shared)."""
    spark.conf.unset(MANAGER_SETTING)
    yield spark
    spark.conf.unset(MANAGER_SETTING)


def manager_spark_builds(spark, path: str) -> str:
    """The class of the manager Spark makes for `path`, from the session's settings now."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark._jsparkSession.sessionState().newHadoopConf()
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    manager = jvm.org.apache.spark.sql.execution.streaming.checkpointing.CheckpointFileManager
    return manager.create(hadoop_path, hadoop_conf).getClass().getName()


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/work/var/checkpoints/stream", True),
        ("var/checkpoints/stream", True),
        ("file:///work/var/checkpoints/stream", True),
        ("hdfs://namenode:8020/heartbeat/checkpoints", False),
        ("s3a://bucket/heartbeat/checkpoints", False),
    ],
)
def test_only_a_local_path_counts_as_local(path, local):
    assert on_local_disk(path) is local


def test_a_local_checkpoint_is_written_through_the_file_system_api(session, tmp_path):
    assert manager_spark_builds(session, str(tmp_path)) == FILE_CONTEXT_MANAGER  # Spark's own
    assert choose_manager(session, str(tmp_path)) == FILE_SYSTEM_MANAGER
    assert manager_spark_builds(session, str(tmp_path)) == FILE_SYSTEM_MANAGER


def test_a_remote_checkpoint_keeps_sparks_choice(session):
    assert choose_manager(session, "hdfs://namenode:8020/heartbeat/checkpoints") is None
    assert session.conf.get(MANAGER_SETTING, None) is None


def test_an_operators_own_manager_wins(session, tmp_path):
    session.conf.set(MANAGER_SETTING, FILE_CONTEXT_MANAGER)
    assert choose_manager(session, str(tmp_path)) is None
    assert manager_spark_builds(session, str(tmp_path)) == FILE_CONTEXT_MANAGER

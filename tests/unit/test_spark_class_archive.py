"""The tests' Spark class archive is made again when the JDK or a jar changes
(tests/support/spark_class_archive.py): a stale archive would be ignored by the JVM, silently
losing what it saves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.spark_class_archive import archive_key

pytestmark = pytest.mark.unit


def _jdk(root: Path, release: str) -> Path:
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.touch()
    (root / "release").write_text(release)
    return java


def _jar(path: Path, content: bytes, mtime: int = 1_700_000_000) -> Path:
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def test_same_jdk_and_jars_give_the_same_key(tmp_path: Path) -> None:
    java = _jdk(tmp_path / "jdk", 'JAVA_VERSION="17.0.13"')
    jars = [_jar(tmp_path / "a.jar", b"a"), _jar(tmp_path / "b.jar", b"bb")]
    assert archive_key(java, jars) == archive_key(java, list(jars))


def test_a_changed_jar_an_added_jar_or_another_jdk_changes_the_key(tmp_path: Path) -> None:
    java = _jdk(tmp_path / "jdk", 'JAVA_VERSION="17.0.13"')
    jar = _jar(tmp_path / "a.jar", b"a")
    before = archive_key(java, [jar])

    _jar(jar, b"a2")  # a new build of the same jar: its size differs
    resized = archive_key(java, [jar])
    _jar(jar, b"a3", mtime=1_800_000_000)  # same size, written later
    rewritten = archive_key(java, [jar])
    added = archive_key(java, [jar, _jar(tmp_path / "b.jar", b"b")])
    upgraded = archive_key(_jdk(tmp_path / "jdk21", 'JAVA_VERSION="21.0.5"'), [jar])

    keys = [before, resized, rewritten, added, upgraded]
    assert len(set(keys)) == len(keys), keys

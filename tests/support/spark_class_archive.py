"""A class-data-sharing archive of the Spark driver's classes, for the tests' Spark JVMs.

Each test job is a new spark-submit, and most of its start is loading and verifying Spark's
classes from the jars; a JVM that maps an archive of them skips that work (here, a job's start
to its first batch: 11.4 -> 7.7 s of CPU). The archive is made once per JDK and set of jars by a
short run of the job's own plan (warmup/spark_job.py) and kept under var/; a JVM given an
archive that does not match its classpath ignores it and loads the classes as usual.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from heartbeat_ops.config import var_dir
from heartbeat_ops.programs import venv_bin

WARMUP_JOB = Path(__file__).with_name("warmup") / "spark_job.py"
# The JVM's own CDS messages (an archive that does not match, classes it skips) are not the
# tests' business and would land in every job's log.
QUIET = "-Xlog:cds*=off"


def connector_jars() -> list[Path]:
    """The Kafka connector and JDBC driver jars `make install` fetched for Spark."""
    return sorted((var_dir() / "jars" / "spark").glob("*.jar"))


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def archive_key(java: Path, jars: list[Path]) -> str:
    """What an archive depends on: the JDK and every jar on the driver's classpath."""
    release = java.parent.parent / "release"
    digest = hashlib.sha256(str(java).encode())
    digest.update(release.read_bytes() if release.exists() else b"")
    for jar in jars:
        stat = jar.stat()
        digest.update(f"{jar.name}:{stat.st_size}:{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def archive_path() -> Path:
    java = Path(shutil.which("java") or "java").resolve()
    jars = [*sorted((_spark_home() / "jars").glob("*.jar")), *connector_jars()]
    return var_dir() / "spark-class-archive" / f"{archive_key(java, jars)}.jsa"


def ensure() -> Path:
    """The archive for this JDK and these jars, made now if missing (about 25 s)."""
    path = archive_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("*.jsa"):  # made for other jars or another JDK
        stale.unlink()
    partial, log = path.with_suffix(".partial"), path.with_suffix(".log")
    partial.unlink(missing_ok=True)
    env = {
        **os.environ,
        "SPARK_SUBMIT_OPTS": f"-XX:ArchiveClassesAtExit={partial} {QUIET}",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": str(_spark_home()),
        "PYSPARK_PYTHON": sys.executable,
    }
    with tempfile.TemporaryDirectory() as checkpoint, log.open("wb") as out:
        jars = ",".join(str(jar) for jar in connector_jars())
        command = [venv_bin("spark-submit"), "--master", "local[2]", "--jars", jars]
        finished = subprocess.run(
            [*command, str(WARMUP_JOB), checkpoint],
            env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600,
        )  # fmt: skip
    if finished.returncode != 0 or not partial.exists():
        raise RuntimeError(f"making the Spark class archive failed: see {log}")
    os.replace(partial, path)
    return path


def java_options(archive: Path) -> str:
    """For SPARK_SUBMIT_OPTS: the options of the driver JVM that spark-submit starts."""
    return f"-XX:SharedArchiveFile={archive} {QUIET}"

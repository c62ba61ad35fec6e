"""The checkout whose streaming job a benchmark runs: this one, or another git revision's.

A revision's tree is extracted once with `git archive` into var/bench/tree-<commit>, sharing
this checkout's installs (var/jars, var/venv: the same Spark, connector jars and Python
packages, so only the job's own code and schema differ). Each run gets a fresh database
provisioned by that tree's own bootstrap and migrations (its heartbeat_ops on PYTHONPATH), and
the job is that tree's own spark-jobs/submit.sh. Older trees read the database's location from
PGHOST/PGPORT/PGDATABASE (before 7ff71e5), newer ones from HEARTBEAT_PG_*: both are given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from heartbeat_ops.config import ROOT, StackConfig, var_dir
from tests.support.stream_job import StreamJob

_BOOTSTRAP = (
    "from heartbeat_ops.config import load; from heartbeat_ops.database import bootstrap;"
    " bootstrap(load())"
)
_SHARED_INSTALLS = ("jars", "venv")
_PREFIX = "heartbeat_bench_drain_"


@dataclass(frozen=True)
class JobTree:
    """A checkout: where its code is, and a short name for its database and the printout."""

    label: str
    key: str  # [a-z0-9_]: part of its database's name
    root: Path

    @classmethod
    def current(cls) -> JobTree:
        return cls("this checkout", "current", ROOT)

    @classmethod
    def of_revision(cls, ref: str) -> JobTree:
        """`ref` (anything `git rev-parse` takes) extracted under var/bench, once."""
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        root = var_dir() / "bench" / f"tree-{commit[:12]}"
        if not (root / "spark-jobs" / "submit.sh").exists():
            partial = root.with_name(f"{root.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            (partial / "var").mkdir(parents=True)
            archive = subprocess.Popen(
                ["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE
            )
            subprocess.run(["tar", "-x", "-C", str(partial)], stdin=archive.stdout, check=True)
            if archive.wait() != 0:
                raise RuntimeError(f"git archive {commit} failed")
            for name in _SHARED_INSTALLS:
                (partial / "var" / name).symlink_to(var_dir() / name)
            partial.rename(root)
        return cls(f"{ref} ({commit[:9]})", commit[:12], root)

    def database(self, stack: StackConfig, run: int) -> StackConfig:
        """The settings pointed at this tree's database for one run."""
        return stack.model_copy(update={"pg_database": f"{_PREFIX}{self.key}_{run}"})

    def environment(self, stack: StackConfig) -> dict[str, str]:
        """What this tree's programs read besides the stack's own variables: the legacy libpq
        spelling of the database's location, and its own var directory (not this checkout's)."""
        env = {
            "PGHOST": stack.pg_host,
            "PGPORT": str(stack.pg_port),
            "PGDATABASE": stack.pg_database,
        }
        if self.root != ROOT:
            env["HEARTBEAT_VAR_DIR"] = str(self.root / "var")
        return env

    def provision(self, stack: StackConfig) -> None:
        """A fresh `stack.pg_database`, made by this tree's own bootstrap and migrations."""
        drop_database(stack)
        env = {
            **os.environ,
            **stack.environment(),
            **self.environment(stack),
            "POSTGRES_USER": stack.pg_superuser,
            "POSTGRES_PASSWORD": stack.pg_superuser_password,
            "PYTHONPATH": f"{self.root / 'ops'}:{self.root / 'contract'}",
        }
        python = var_dir() / "venv" / "bin" / "python"
        subprocess.run([str(python), "-c", _BOOTSTRAP], env=env, cwd=self.root, check=True)

    def job(self, stack: StackConfig, topic: str, checkpoint: str, log: Path, **overrides: str):
        """Its streaming job (not started) on `topic`, writing to `stack.pg_database`; StreamJob
        gives it the stack's variables, `overrides` win over them."""
        overrides = {**self.environment(stack), **overrides}
        return StreamJob(stack, topic, checkpoint, log, root=self.root, **overrides)


def drop_database(stack: StackConfig) -> None:
    """Drop `stack.pg_database` (a benchmark's own), sessions and all."""
    if not stack.pg_database.startswith(_PREFIX):
        raise ValueError(f"{stack.pg_database!r} is not a benchmark's database")
    admin = psycopg2.connect(
        stack.dsn(
            user=stack.pg_superuser, password=stack.pg_superuser_password, database="postgres"
        )
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(stack.pg_database)
                )
            )
    finally:
        admin.close()

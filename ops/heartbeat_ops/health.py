"""Readiness checks, polled until true or a deadline; a crashed program fails the wait at once."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import psycopg2
from kafka.errors import KafkaError

from . import supervisor
from .config import StackConfig, var_dir
from .principals import admin_client


class NotReady(RuntimeError):
    """A component did not become healthy; the message says where its log is."""


def postgres_ready(config: StackConfig) -> bool:
    try:
        psycopg2.connect(config.superuser_dsn).close()
    except psycopg2.OperationalError:
        return False
    return True


# One check answers within a few seconds, and its caller polls again: kafka-python's admin client
# otherwise waits up to 30 s for its first metadata, and a check begun while the broker was down
# went on for 30 s after a restart that took 11 (a broker SIGKILLed and started again in the
# tests' world: back after 30.2 s, now 11.8 s).
_CHECK = {"request_timeout_ms": 3000, "bootstrap_timeout_ms": 3000}


def kafka_ready(config: StackConfig) -> bool:
    try:
        admin = admin_client(config, **_CHECK)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def kafka_node_ready(config: StackConfig) -> bool:
    """This node (HEARTBEAT_KAFKA_NODE_ID) answers on its own address, not merely some node of
    the cluster: a container's healthcheck must not pass on its neighbours' health."""
    host, port = config.kafka_host, config.kafka_port
    return kafka_ready(config.model_copy(update={"kafka_bootstrap_servers": f"{host}:{port}"}))


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(name: str, check: Callable[[], bool], timeout: float = 120.0) -> float:
    """Poll `check` until it passes; returns seconds waited. Fails fast on FATAL/BACKOFF."""
    started = time.monotonic()
    next_note = started + 10
    while not check():
        now = time.monotonic()
        state = supervisor.states().get(name)
        if state == "FATAL":
            raise NotReady(f"{name} failed to start; see {var_dir() / 'log' / (name + '.log')}")
        if now - started > timeout:
            raise NotReady(
                f"{name} not ready after {timeout:.0f}s (state {state}); "
                f"see {var_dir() / 'log' / (name + '.log')}"
            )
        if now >= next_note:
            print(f"  ... waiting for {name} ({now - started:.0f}s, {state})", flush=True)
            next_note = now + 10
        time.sleep(0.5)
    return time.monotonic() - started

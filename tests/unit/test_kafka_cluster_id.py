"""KRaft cluster ids: Kafka's format tool reads an id starting with "-" as an option."""

from __future__ import annotations

import base64
import uuid

import pytest

from heartbeat_ops import config, nodes

pytestmark = pytest.mark.unit


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch):
    # The first UUID encodes to an id starting with "-" (0xf8.. -> "-"), the second does not.
    dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes(16))
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    draws = iter([dashed, plain])
    monkeypatch.setattr(config.uuid, "uuid4", lambda: next(draws))
    assert nodes.new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()


def test_cluster_ids_are_22_url_safe_characters():
    ids = {nodes.new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)

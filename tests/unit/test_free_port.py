"""free_port hands a port out once: parallel test workers and the demo's late bind never share one."""

from __future__ import annotations

import os
import time

import pytest

from hazmon import devservers


@pytest.fixture
def reservations(tmp_path, monkeypatch):
    monkeypatch.setattr(devservers, "PORT_RESERVATIONS", tmp_path / "ports")
    return tmp_path / "ports"


def test_a_port_handed_out_is_not_handed_out_again_while_its_claim_is_fresh(reservations, monkeypatch):
    picks = iter([23_456, 23_456, 23_457])
    monkeypatch.setattr(devservers.random, "randrange", lambda lo, hi: next(picks))
    assert devservers.free_port() == 23_456
    assert devservers.free_port() == 23_457  # 23 456 was free to bind, but claimed
    assert sorted(p.name for p in reservations.iterdir()) == ["23456", "23457"]


def test_a_claim_older_than_the_ttl_is_taken_over(reservations, monkeypatch):
    monkeypatch.setattr(devservers.random, "randrange", lambda lo, hi: 23_458)
    assert devservers.free_port() == 23_458
    old = time.time() - devservers.RESERVATION_TTL_S - 5
    os.utime(reservations / "23458", (old, old))
    assert devservers.free_port() == 23_458
    assert (reservations / "23458").stat().st_mtime > old + 1


def test_ports_come_from_below_the_ephemeral_range(reservations):
    ports = {devservers.free_port() for _ in range(50)}
    assert len(ports) == 50
    assert all(10_000 <= p < devservers._ephemeral_low() for p in ports)

"""The event outbox: journal order, once in the normal path, again after a crash, cursor on acks only."""

from __future__ import annotations

import orjson
import pytest

from alerts.book.book import AlarmBook
from alerts.book.outbox import EventOutbox, events_topic
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import CONTRACT_EVENT_TYPES, event_from_record

T0 = 1_795_392_000_000


class FakeTransport:
    """Records publishes; tokens count up like paho's message ids."""

    def __init__(self, ack_inline: EventOutbox | None = None):
        self.sent: list[tuple[int, str, dict]] = []
        self._next = 0
        self.ack_inline = ack_inline  # acknowledge before publish() returns (a fast broker)

    def publish(self, topic: str, payload: bytes) -> int:
        self._next += 1
        self.sent.append((self._next, topic, orjson.loads(payload)))
        if self.ack_inline is not None:
            self.ack_inline.on_ack(self._next, True)
        return self._next


def change(sensor: str, active: bool, t: int, site: str = "site-a") -> ConditionChange:
    return ConditionChange(
        site, sensor, ConditionKind.H, active, t, Priority.HIGH, "H", value=17.0, limit=16.5, message="高"
    )


@pytest.fixture
def journal(tmp_path):
    j = AlarmJournal(tmp_path / "alarms.sqlite")
    yield j
    j.close()


def raise_and_clear(book: AlarmBook, sensor: str, t: int) -> None:
    book.on_changes([change(sensor, True, t)], t)
    book.on_changes([change(sensor, False, t + 1000)], t + 1000)


def test_contract_types_are_raise_and_return_to_normal():
    assert {"AlarmRaised", "AlarmReturnedToNormal"} == CONTRACT_EVENT_TYPES


def test_events_go_out_once_in_journal_order_and_operator_steps_are_not_published(journal):
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport)
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    book.on_changes([change("S2", True, T0 + 5000)], T0 + 5000)
    book.acknowledge(book.current(source="S2")[0].alarm_id, "zhang", now_ms=T0 + 6000)
    assert outbox.pump() == 3
    assert outbox.pump() == 0  # nothing twice while acks are outstanding
    assert [(e["sensor"], e["type"]) for _, _, e in transport.sent] == [
        ("S1", "alarm"),
        ("S1", "return_to_normal"),
        ("S2", "alarm"),
    ]
    assert (
        {topic for _, topic, _ in transport.sent} == {events_topic("site-a")} == {"hazmon/v1/site-a/events"}
    )
    assert transport.sent[0][2]["alarm_id"] == "A000001"
    assert transport.sent[0][2]["time"].endswith("+08:00")


def test_cursor_moves_only_over_acknowledged_events_in_order(journal):
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport, persist_every_s=0)
    book = AlarmBook(journal)
    for i in range(3):
        book.on_changes([change(f"S{i}", True, T0 + i)], T0 + i)
    outbox.pump()
    tokens = [tok for tok, _, _ in transport.sent]
    outbox.on_ack(tokens[2])  # out of order: the first two are still in flight
    outbox.persist()
    assert outbox.cursor == 0
    outbox.on_ack(tokens[0])
    outbox.persist()
    assert outbox.cursor == 1
    outbox.on_ack(tokens[1])
    outbox.persist()
    assert outbox.cursor == 3 and outbox.in_flight == 0 and outbox.backlog() == 0
    assert journal.open_cursor(outbox.name) == 3  # persisted


def test_a_restart_republishes_what_was_committed_but_not_acknowledged(tmp_path):
    path = tmp_path / "alarms.sqlite"
    journal = AlarmJournal(path)
    first = FakeTransport()
    outbox = EventOutbox(journal, first, persist_every_s=0)
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    outbox.pump()
    outbox.on_ack(first.sent[0][0])  # the raise was acknowledged, the return to normal was not
    outbox.persist()
    book.on_changes([change("S2", True, T0 + 9000)], T0 + 9000)  # committed, never published
    journal.close()  # "SIGKILL"

    journal = AlarmJournal(path)
    second = FakeTransport()
    outbox = EventOutbox(journal, second)
    AlarmBook(journal)
    assert outbox.backlog() == 2
    outbox.pump()
    assert [(e["sensor"], e["type"]) for _, _, e in second.sent] == [
        ("S1", "return_to_normal"),
        ("S2", "alarm"),
    ]
    journal.close()


def test_an_ack_that_arrives_before_publish_returns_counts(journal):
    outbox = EventOutbox(journal, FakeTransport(), persist_every_s=0)
    outbox.transport = FakeTransport(ack_inline=outbox)
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    outbox.pump()
    assert outbox.in_flight == 0 and outbox.acked == 2
    assert outbox.persist() and outbox.cursor == journal.history(limit=1)[0].seq


def test_a_refused_event_is_counted_and_does_not_hold_the_cursor(journal):
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport, persist_every_s=0)
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    outbox.pump()
    outbox.on_ack(transport.sent[0][0], ok=False)
    outbox.on_ack(transport.sent[1][0])
    outbox.persist()
    assert outbox.refused == 1 and outbox.acked == 1 and outbox.backlog() == 0


def test_in_flight_is_bounded(journal):
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport, max_in_flight=2)
    book = AlarmBook(journal)
    for i in range(5):
        book.on_changes([change(f"S{i}", True, T0 + i)], T0 + i)
    assert outbox.pump() == 2
    outbox.on_ack(transport.sent[0][0])
    assert outbox.pump() == 1
    assert [e["sensor"] for _, _, e in transport.sent] == ["S0", "S1", "S2"]


def test_cursor_writes_are_spaced_while_events_are_in_flight(journal):
    now = [0.0]
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport, persist_every_s=0.5, clock=lambda: now[0])
    book = AlarmBook(journal)
    for i in range(3):
        book.on_changes([change(f"S{i}", True, T0 + i)], T0 + i)
    outbox.pump()
    outbox.on_ack(transport.sent[0][0])
    assert not outbox.persist()  # still in flight and not due: no fsync per ack
    now[0] = 0.6
    assert outbox.persist() and outbox.cursor == 1
    for tok, _, _ in transport.sent[1:]:
        outbox.on_ack(tok)
    assert outbox.persist() and outbox.cursor == 3  # idle: written at once


def test_a_new_cursor_starts_at_the_end_of_an_existing_history(journal):
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    transport = FakeTransport()
    outbox = EventOutbox(journal, transport, name="late-consumer")
    assert outbox.pump() == 0 and outbox.cursor == 2


def test_set_cursor_never_moves_back(journal):
    journal.open_cursor("c")
    journal.set_cursor("c", 5)
    journal.set_cursor("c", 3)
    assert journal.open_cursor("c") == 5


def test_every_journaled_event_rebuilds_from_its_row(journal):
    book = AlarmBook(journal)
    raise_and_clear(book, "S1", T0)
    book.on_changes([change("S2", True, T0 + 5000)], T0 + 5000)
    aid = book.current(source="S2")[0].alarm_id
    book.acknowledge(aid, "zhang", "seen", now_ms=T0 + 6000)
    book.shelve(aid, "zhang", 60, "maintenance", now_ms=T0 + 7000)
    rows = journal.history(newest_first=False)
    assert {r.type for r in rows} >= {
        "AlarmRaised",
        "AlarmReturnedToNormal",
        "AlarmAcknowledged",
        "AlarmShelved",
    }
    for r in rows:
        ev = r.to_event()
        assert ev.type == r.type and ev.key == r.key and ev.details() == r.details
    with pytest.raises(ValueError, match="unknown alarm event type"):
        event_from_record("AlarmExploded", ("a", "sensor", "b", "H"), "", 0, {})

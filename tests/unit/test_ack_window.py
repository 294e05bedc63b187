"""The acknowledgement window both MQTT outboxes share: the cursor never passes an unacknowledged row."""

from __future__ import annotations

from alerts.ack_window import AckWindow


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_cursor_stops_before_the_oldest_row_still_unacknowledged():
    w = AckWindow(10, max_in_flight=3, clock=Clock())
    for seq, token in ((11, 1), (12, 2), (13, 3)):
        assert w.handed(seq, token) is None
    assert w.room() == (0, 13)
    assert w.acknowledge(2, True) == 12  # a later row acknowledged first
    assert w.acked_upto == 10
    assert w.acknowledge(1, True) == 11
    assert w.acked_upto == 12 and w.in_flight == 1


def test_an_acknowledgement_before_publish_returned_settles_the_row_when_it_is_handed():
    w = AckWindow(0, clock=Clock())
    assert w.acknowledge(7, False) is None  # paho's network thread was quicker
    assert w.handed(1, 7) is False  # the refusal reaches the counter once, through handed
    assert w.in_flight == 0 and w.acked_upto == 1


def test_a_skipped_row_moves_the_position_without_waiting_for_an_ack():
    w = AckWindow(0, clock=Clock())
    assert w.handed(1, None) is None
    assert w.acked_upto == 1 and w.in_flight == 0


def test_the_cursor_is_written_at_most_every_interval_while_acks_are_outstanding_and_at_once_when_idle():
    clock = Clock()
    written: list[int] = []
    w = AckWindow(0, persist_every_s=0.5, clock=clock)
    w.handed(1, 1)
    w.handed(2, 2)
    w.acknowledge(1, True)
    assert not w.persist(written.append)  # row 2 still out and the interval not over
    clock.t = 0.6
    assert w.persist(written.append) and written == [1]
    w.acknowledge(2, True)
    assert w.persist(written.append) and written == [1, 2]  # nothing outstanding: at once
    assert not w.persist(written.append)  # unchanged: no write
    assert w.cursor == 2

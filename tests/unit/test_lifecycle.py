"""The ISA-18.2 alarm state machine: the full transition table, chattering, shelving, overlays, §3 events."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import (
    CHATTERING,
    DEFAULT_CHATTER,
    Alarm,
    AlarmEvent,
    AlarmRaised,
    AlarmState,
    AlarmSuppressed,
    AlarmUnshelved,
    AlarmUpdated,
    ChatterPolicy,
    InvalidCommand,
    InvalidTransition,
    NewId,
    Overlay,
    acknowledge,
    apply_condition,
    comment,
    contract_events,
    default_alarm_id,
    expire_shelve,
    local_iso,
    new_alarm,
    remove_from_service,
    return_to_service,
    shelve,
    suppress,
    tick,
    unshelve,
    unsuppress,
)

SITE = "jianghai-chem-01"
T0 = 1_795_392_000_000  # 2026-11-23T08:00:00+08:00
HOUR = 3_600_000
SHELF_END = T0 + HOUR  # shelves in the fixtures end here
T = T0 + 60_000  # inputs of the table arrive at this time
FAULT = "instrument fault"


def change(active: bool, t: int, kind: ConditionKind = ConditionKind.H, **kw: object) -> ConditionChange:
    args: dict = dict(
        site=SITE, source="T101-LT", kind=kind, active=active, time_ms=t, priority=Priority.HIGH,
        level=kind.name, value=16.61 if active else 16.2, limit=16.5,
        message="1号储罐液位高报警 16.61 m ≥ 16.5 m" if active else "",
    )  # fmt: skip
    args.update(kw)
    return ConditionChange(**args)


KEY = change(True, T0).key


def numbered() -> NewId:
    n = itertools.count(1)
    return lambda _key, _t: f"A{next(n):06d}"


def run(a: Alarm | None, *steps: Callable[[Alarm | None], tuple[Alarm | None, list[AlarmEvent]]]) -> Alarm:
    for step in steps:
        a, _ = step(a)
    assert a is not None
    return a


# ---- fixtures: each state reached through the public functions, so every fixture is reachable

IDS = numbered()


def _raise(a):
    return apply_condition(a, change(True, T0), T0, new_id=IDS)


def _ack(a):
    return acknowledge(a, "op1", T0 + 1000)


def _rtn(a):
    return apply_condition(a, change(False, T0 + 2000), T0 + 2000)


def _shelve(a):
    return shelve(a, "op1", SHELF_END, "nuisance during calibration", T0 + 3000)


def _suppress(a):
    return suppress(a, FAULT, T0 + 3000)


def _oos(a):
    return remove_from_service(a, "tech", "transmitter replaced", T0 + 3000)


BUILD: dict[str, Callable[[], Alarm]] = {
    "NORMAL": lambda: run(None, _raise, _ack, _rtn),
    "UNACK": lambda: run(None, _raise),
    "ACK": lambda: run(None, _raise, _ack),
    "RTN_UNACK": lambda: run(None, _raise, _rtn),
    "SHELVED/active": lambda: run(None, _raise, _shelve),
    "SHELVED/inactive": lambda: run(None, _raise, _rtn, _shelve),
    "SUPPRESSED/active": lambda: run(None, _raise, _suppress),
    "SUPPRESSED/inactive": lambda: run(None, _raise, _ack, _rtn, _suppress),
    "OUT_OF_SERVICE/active": lambda: run(None, _raise, _oos),
    "OUT_OF_SERVICE/inactive": lambda: run(None, _raise, _ack, _rtn, _oos),
}

INPUTS: dict[str, Callable[[Alarm], tuple[Alarm | None, list[AlarmEvent]]]] = {
    "active": lambda a: apply_condition(a, change(True, T), T, new_id=IDS),
    "inactive": lambda a: apply_condition(a, change(False, T), T, new_id=IDS),
    "ack": lambda a: acknowledge(a, "op1", T),
    "shelve": lambda a: shelve(a, "op1", T + HOUR, "nuisance during calibration", T),
    "unshelve": lambda a: unshelve(a, "op1", T, new_id=IDS),
    "expire": lambda a: expire_shelve(a, SHELF_END, new_id=IDS),
    "suppress": lambda a: suppress(a, FAULT, T),
    "unsuppress": lambda a: unsuppress(a, FAULT, T, new_id=IDS),
    "oos": lambda a: remove_from_service(a, "tech", "transmitter replaced", T),
    "return": lambda a: return_to_service(a, "tech", T, new_id=IDS),
    "comment": lambda a: comment(a, "op1", "field operator sent", T),
}

# state, input -> state after, events ("!" = InvalidTransition, "-" = no events).
# Event names drop the "Alarm" prefix: Raised = AlarmRaised, RTN = AlarmReturnedToNormal.
TABLE = """
NORMAL                   active      UNACK           Raised
NORMAL                   inactive    NORMAL          -
NORMAL                   ack         !
NORMAL                   shelve      !
NORMAL                   unshelve    !
NORMAL                   expire      !
NORMAL                   suppress    SUPPRESSED      Suppressed
NORMAL                   unsuppress  !
NORMAL                   oos         OUT_OF_SERVICE  RemovedFromService
NORMAL                   return      !
NORMAL                   comment     NORMAL          Commented

UNACK                    active      UNACK           -
UNACK                    inactive    RTN_UNACK       RTN
UNACK                    ack         ACK             Acknowledged
UNACK                    shelve      SHELVED         Shelved
UNACK                    unshelve    !
UNACK                    expire      !
UNACK                    suppress    SUPPRESSED      Suppressed
UNACK                    unsuppress  !
UNACK                    oos         OUT_OF_SERVICE  RemovedFromService
UNACK                    return      !
UNACK                    comment     UNACK           Commented

ACK                      active      ACK             -
ACK                      inactive    NORMAL          RTN Cleared
ACK                      ack         !
ACK                      shelve      SHELVED         Shelved
ACK                      unshelve    !
ACK                      expire      !
ACK                      suppress    SUPPRESSED      Suppressed
ACK                      unsuppress  !
ACK                      oos         OUT_OF_SERVICE  RemovedFromService
ACK                      return      !
ACK                      comment     ACK             Commented

RTN_UNACK                active      UNACK           Raised
RTN_UNACK                inactive    RTN_UNACK       -
RTN_UNACK                ack         NORMAL          Acknowledged Cleared
RTN_UNACK                shelve      SHELVED         Shelved
RTN_UNACK                unshelve    !
RTN_UNACK                expire      !
RTN_UNACK                suppress    SUPPRESSED      Suppressed
RTN_UNACK                unsuppress  !
RTN_UNACK                oos         OUT_OF_SERVICE  RemovedFromService
RTN_UNACK                return      !
RTN_UNACK                comment     RTN_UNACK       Commented

SHELVED/active           active      SHELVED         -
SHELVED/active           inactive    SHELVED         RTN Cleared
SHELVED/active           ack         !
SHELVED/active           shelve      !
SHELVED/active           unshelve    UNACK           Unshelved Raised
SHELVED/active           expire      UNACK           Unshelved Raised
SHELVED/active           suppress    SUPPRESSED      Suppressed
SHELVED/active           unsuppress  !
SHELVED/active           oos         OUT_OF_SERVICE  RemovedFromService
SHELVED/active           return      !
SHELVED/active           comment     SHELVED         Commented

SHELVED/inactive         active      SHELVED         Cleared ConditionChanged
SHELVED/inactive         inactive    SHELVED         -
SHELVED/inactive         ack         !
SHELVED/inactive         shelve      !
SHELVED/inactive         unshelve    NORMAL          Unshelved Cleared
SHELVED/inactive         expire      NORMAL          Unshelved Cleared
SHELVED/inactive         suppress    SUPPRESSED      Suppressed
SHELVED/inactive         unsuppress  !
SHELVED/inactive         oos         OUT_OF_SERVICE  RemovedFromService
SHELVED/inactive         return      !
SHELVED/inactive         comment     SHELVED         Commented

SUPPRESSED/active        active      SUPPRESSED      -
SUPPRESSED/active        inactive    SUPPRESSED      RTN Cleared
SUPPRESSED/active        ack         !
SUPPRESSED/active        shelve      !
SUPPRESSED/active        unshelve    !
SUPPRESSED/active        expire      !
SUPPRESSED/active        suppress    !
SUPPRESSED/active        unsuppress  UNACK           Unsuppressed Raised
SUPPRESSED/active        oos         OUT_OF_SERVICE  RemovedFromService
SUPPRESSED/active        return      !
SUPPRESSED/active        comment     SUPPRESSED      Commented

SUPPRESSED/inactive      active      SUPPRESSED      ConditionChanged
SUPPRESSED/inactive      inactive    SUPPRESSED      -
SUPPRESSED/inactive      ack         !
SUPPRESSED/inactive      shelve      !
SUPPRESSED/inactive      unshelve    !
SUPPRESSED/inactive      expire      !
SUPPRESSED/inactive      suppress    !
SUPPRESSED/inactive      unsuppress  NORMAL          Unsuppressed
SUPPRESSED/inactive      oos         OUT_OF_SERVICE  RemovedFromService
SUPPRESSED/inactive      return      !
SUPPRESSED/inactive      comment     SUPPRESSED      Commented

OUT_OF_SERVICE/active    active      OUT_OF_SERVICE  -
OUT_OF_SERVICE/active    inactive    OUT_OF_SERVICE  RTN Cleared
OUT_OF_SERVICE/active    ack         !
OUT_OF_SERVICE/active    shelve      !
OUT_OF_SERVICE/active    unshelve    !
OUT_OF_SERVICE/active    expire      !
OUT_OF_SERVICE/active    suppress    OUT_OF_SERVICE  Suppressed
OUT_OF_SERVICE/active    unsuppress  !
OUT_OF_SERVICE/active    oos         !
OUT_OF_SERVICE/active    return      UNACK           ReturnedToService Raised
OUT_OF_SERVICE/active    comment     OUT_OF_SERVICE  Commented

OUT_OF_SERVICE/inactive  active      OUT_OF_SERVICE  ConditionChanged
OUT_OF_SERVICE/inactive  inactive    OUT_OF_SERVICE  -
OUT_OF_SERVICE/inactive  ack         !
OUT_OF_SERVICE/inactive  shelve      !
OUT_OF_SERVICE/inactive  unshelve    !
OUT_OF_SERVICE/inactive  expire      !
OUT_OF_SERVICE/inactive  suppress    OUT_OF_SERVICE  Suppressed
OUT_OF_SERVICE/inactive  unsuppress  !
OUT_OF_SERVICE/inactive  oos         !
OUT_OF_SERVICE/inactive  return      NORMAL          ReturnedToService
OUT_OF_SERVICE/inactive  comment     OUT_OF_SERVICE  Commented
"""


def _rows() -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    rows = []
    for line in TABLE.strip().splitlines():
        if not line.strip():
            continue
        state, inp, *rest = line.split()
        if rest == ["!"]:
            rows.append((state, inp, None, ()))
        else:
            after, *names = rest
            events = (
                () if names == ["-"] else tuple("Alarm" + n.replace("RTN", "ReturnedToNormal") for n in names)
            )
            rows.append((state, inp, after, events))
    return rows


ROWS = _rows()


def test_table_covers_every_state_and_input():
    assert {(s, i) for s, i, _, _ in ROWS} == set(itertools.product(BUILD, INPUTS))
    assert len(ROWS) == len(BUILD) * len(INPUTS)


@pytest.mark.parametrize("state", list(BUILD))
def test_fixture_is_in_its_state(state):
    a = BUILD[state]()
    assert a.state == AlarmState(state.split("/")[0])
    if "/" in state:
        assert a.active == (state.endswith("/active"))


@pytest.mark.parametrize(("state", "inp", "after", "events"), ROWS, ids=[f"{s}-{i}" for s, i, _, _ in ROWS])
def test_transition(state, inp, after, events):
    before = BUILD[state]()
    if after is None:
        with pytest.raises(InvalidTransition):
            INPUTS[inp](before)
        return
    a, evs = INPUTS[inp](before)
    assert a is not None
    assert a.state == AlarmState(after)
    assert tuple(e.type for e in evs) == events
    assert all(e.key == KEY for e in evs)
    if not events:
        assert a is before  # nothing happened, nothing changed (idempotent)
    if a.state in (AlarmState.NORMAL, AlarmState.UNACK, AlarmState.ACK, AlarmState.RTN_UNACK):
        # outside overlays, "annunciated" is exactly "the episode is open"
        assert a.annunciated == (a.active or not a.acked)


# ---- episodes and ids


def test_raise_takes_a_new_id_and_reactivation_keeps_it():
    ids = numbered()
    a, [r1] = apply_condition(None, change(True, T0), T0, new_id=ids)
    assert isinstance(r1, AlarmRaised) and (r1.alarm_id, r1.reactivated) == ("A000001", False)
    a, _ = apply_condition(a, change(False, T0 + 1000), T0 + 1000, new_id=ids)
    a, [r2] = apply_condition(a, change(True, T0 + 2000), T0 + 2000, new_id=ids)
    assert (r2.alarm_id, r2.reactivated, a.state) == ("A000001", True, AlarmState.UNACK)
    a, _ = acknowledge(a, "op1", T0 + 3000)
    a, evs = apply_condition(a, change(False, T0 + 4000), T0 + 4000, new_id=ids)
    assert [e.type for e in evs] == ["AlarmReturnedToNormal", "AlarmCleared"]
    a, [r3] = apply_condition(a, change(True, T0 + 200_000), T0 + 200_000, new_id=ids)
    assert (r3.alarm_id, r3.reactivated, a.raised_ms) == ("A000002", False, T0 + 200_000)


def test_default_ids_are_deterministic_and_differ_per_raise():
    a1, _ = apply_condition(None, change(True, T0), T0)
    a2, _ = apply_condition(None, change(True, T0), T0)
    a3, _ = apply_condition(None, change(True, T0 + 1), T0 + 1)
    assert a1.alarm_id == a2.alarm_id == default_alarm_id(KEY, T0) != a3.alarm_id
    assert len(a1.alarm_id) == 12


def test_hidden_activation_from_normal_is_a_new_episode_when_revealed():
    a = BUILD["SUPPRESSED/inactive"]()
    old = a.alarm_id
    a, _ = apply_condition(a, change(True, T), T, new_id=IDS)
    fresh = numbered()  # a number the shared IDS never gave: whichever test ran first in this worker
    a, evs = unsuppress(a, FAULT, T + 1000, new_id=lambda key, t: "B" + fresh(key, t)[1:])
    raised = evs[-1]
    assert isinstance(raised, AlarmRaised) and not raised.reactivated
    assert raised.alarm_id == a.alarm_id == "B000001" != old
    assert a.raised_ms == T + 1000  # annunciated when it became visible


def test_reveal_of_a_continuing_episode_keeps_its_id():
    a = BUILD["SHELVED/active"]()
    a, evs = unshelve(a, "op1", T)
    assert evs[-1].alarm_id == a.alarm_id and evs[-1].reactivated


# ---- idempotence and ordering


def test_duplicates_and_stale_changes_emit_nothing():
    a, _ = apply_condition(None, change(True, T0), T0)
    for c in (change(True, T0), change(True, T0 + 5000), change(False, T0 - 1)):
        b, evs = apply_condition(a, c, T0 + 10_000)
        assert (b, evs) == (a, [])
    assert apply_condition(None, change(False, T0), T0) == (None, [])


def test_value_only_resend_is_silent_but_an_escalation_is_an_update():
    a, _ = apply_condition(None, change(True, T0), T0)
    b, evs = apply_condition(a, change(True, T0 + 1000, value=17.0), T0 + 1000)
    assert (b, evs) == (a, [])
    b, evs = apply_condition(a, change(True, T0 + 1000, priority=Priority.CRITICAL, level="HH"), T0 + 1000)
    [u] = evs
    assert isinstance(u, AlarmUpdated) and u.priority is Priority.CRITICAL
    assert (b.state, b.priority, b.alarm_id) == (AlarmState.UNACK, Priority.CRITICAL, a.alarm_id)


def test_early_warning_eta_refresh_is_an_update():
    ew = ConditionKind.EARLY_WARNING
    a, _ = apply_condition(None, change(True, T0, kind=ew, eta_ms=T0 + 9 * HOUR), T0)
    a, [u] = apply_condition(a, change(True, T0 + 60_000, kind=ew, eta_ms=T0 + 5 * HOUR), T0 + 60_000)
    assert isinstance(u, AlarmUpdated) and u.eta_ms == a.eta_ms == T0 + 5 * HOUR


def test_change_for_another_point_is_refused():
    a, _ = apply_condition(None, change(True, T0), T0)
    with pytest.raises(ValueError):
        apply_condition(a, change(True, T0, kind=ConditionKind.HH), T0)


# ---- chattering


def toggle(a: Alarm | None, times: list[int], policy: ChatterPolicy = DEFAULT_CHATTER) -> tuple[Alarm, list]:
    """Activate at each time and deactivate 5 s later; return the alarm and all events."""
    out = []
    for t in times:
        for active, at in ((True, t), (False, t + 5000)):
            a, evs = apply_condition(a, change(active, at), at, policy=policy)
            out += evs
    assert a is not None
    return a, out


def test_three_activations_in_a_minute_suppress_the_alarm_as_chattering():
    a, evs = toggle(None, [T0, T0 + 20_000, T0 + 40_000])
    assert [e.type for e in evs] == [
        "AlarmRaised", "AlarmReturnedToNormal",
        "AlarmRaised", "AlarmReturnedToNormal",
        "AlarmSuppressed", "AlarmCleared", "AlarmConditionChanged", "AlarmConditionChanged",
    ]  # fmt: skip
    supp = evs[4]
    assert isinstance(supp, AlarmSuppressed) and supp.chattering and supp.reason == CHATTERING
    assert a.chattering and a.state is AlarmState.SUPPRESSED and a.activations == 3
    # more chatter stays silent
    a, evs = toggle(a, [T0 + 60_000, T0 + 80_000])
    assert {e.type for e in evs} == {"AlarmConditionChanged"}


def test_chattering_is_released_after_ten_quiet_minutes():
    a, _ = toggle(None, [T0, T0 + 20_000, T0 + 40_000])
    last = T0 + 40_000
    assert tick(a, last + 599_999) == (a, [])
    a, evs = tick(a, last + 600_000)
    assert [e.type for e in evs] == ["AlarmUnsuppressed"]
    assert not a.chattering and a.state is AlarmState.NORMAL and a.recent_activations_ms == ()


def test_chattering_release_annunciates_a_standing_condition():
    a, _ = toggle(None, [T0, T0 + 20_000])
    a, _ = apply_condition(a, change(True, T0 + 40_000), T0 + 40_000)  # third activation, stays on
    assert a.state is AlarmState.SUPPRESSED and a.active
    a, evs = tick(a, T0 + 40_000 + 600_000, new_id=numbered())
    assert [e.type for e in evs] == ["AlarmUnsuppressed", "AlarmRaised"]
    assert a.state is AlarmState.UNACK and a.alarm_id == "A000001"


def test_activation_after_quiet_period_releases_then_raises():
    a, _ = toggle(None, [T0, T0 + 20_000, T0 + 40_000])
    t = T0 + 40_000 + 700_000
    a, evs = apply_condition(a, change(True, t), t, new_id=numbered())
    assert [e.type for e in evs] == ["AlarmUnsuppressed", "AlarmRaised"]
    assert a.state is AlarmState.UNACK and not a.chattering


def test_activations_spread_wider_than_the_window_do_not_chatter():
    a, evs = toggle(None, [T0, T0 + 31_000, T0 + 62_000, T0 + 93_000])
    assert not a.chattering and "AlarmSuppressed" not in {e.type for e in evs}


def test_chatter_policy_is_configurable():
    policy = ChatterPolicy(count=5, window_ms=120_000, quiet_ms=60_000)
    a, _ = toggle(None, [T0 + i * 20_000 for i in range(4)], policy)
    assert not a.chattering
    a, _ = toggle(a, [T0 + 80_000], policy)
    assert a.chattering
    a, evs = tick(a, T0 + 80_000 + 60_000, policy=policy)
    assert not a.chattering and evs[0].type == "AlarmUnsuppressed"


def test_chattering_stacks_with_other_suppressions():
    a, _ = toggle(None, [T0, T0 + 20_000, T0 + 40_000])
    a, _ = suppress(a, FAULT, T0 + 50_000)
    a, _ = tick(a, T0 + 40_000 + 600_000)
    assert not a.chattering and a.suppressions == (FAULT,) and a.state is AlarmState.SUPPRESSED


# ---- shelving


def test_shelve_expires_on_tick_and_annunciates_a_still_active_alarm():
    a = BUILD["SHELVED/active"]()
    assert tick(a, SHELF_END - 1) == (a, [])
    a, evs = tick(a, SHELF_END)
    assert [e.type for e in evs] == ["AlarmUnshelved", "AlarmRaised"]
    assert isinstance(evs[0], AlarmUnshelved) and evs[0].expired and evs[0].user == "system"
    assert a.state is AlarmState.UNACK and a.shelved_until_ms is None


def test_a_late_tick_never_hides_a_raise():
    # the shelve ran out before a condition change was processed: expiry is applied first
    a = run(None, _raise, _rtn, lambda a: shelve(a, "op1", T0 + 10_000, "nuisance", T0 + 3000))
    t = T0 + 20_000
    a, evs = apply_condition(a, change(True, t), t, new_id=numbered())
    assert [e.type for e in evs] == ["AlarmUnshelved", "AlarmCleared", "AlarmRaised"]
    assert a.state is AlarmState.UNACK


def test_expire_before_due_is_refused():
    with pytest.raises(InvalidTransition):
        expire_shelve(BUILD["SHELVED/active"](), SHELF_END - 1)


@pytest.mark.parametrize(
    ("user", "until", "reason"), [("", T + HOUR, "r"), ("op1", T, "r"), ("op1", T + HOUR, "  ")]
)
def test_shelve_needs_a_user_a_future_end_and_a_reason(user, until, reason):
    with pytest.raises(InvalidCommand):
        shelve(BUILD["UNACK"](), user, until, reason, T)


@pytest.mark.parametrize(
    "command",
    [
        lambda a: acknowledge(a, "", T),
        lambda a: remove_from_service(a, "tech", "", T),
        lambda a: comment(a, "op1", "", T),
        lambda a: suppress(a, "", T),
    ],
)
def test_incomplete_commands_are_refused(command):
    with pytest.raises(InvalidCommand):
        command(BUILD["UNACK"]())


# ---- overlays


def test_overlays_stack_and_the_strongest_shows():
    a = BUILD["SHELVED/active"]()
    a, _ = suppress(a, FAULT, T)
    assert (a.state, a.overlay) == (AlarmState.SUPPRESSED, Overlay.SUPPRESSED)
    a, _ = remove_from_service(a, "tech", "maintenance", T)
    assert a.state is AlarmState.OUT_OF_SERVICE
    a, evs = return_to_service(a, "tech", T + 1000)
    assert [e.type for e in evs] == ["AlarmReturnedToService"] and a.state is AlarmState.SUPPRESSED
    a, evs = unsuppress(a, FAULT, T + 2000)
    assert [e.type for e in evs] == ["AlarmUnsuppressed"] and a.state is AlarmState.SHELVED
    a, evs = unshelve(a, "op1", T + 3000)
    assert [e.type for e in evs] == ["AlarmUnshelved", "AlarmRaised"] and a.state is AlarmState.UNACK


def test_suppression_reasons_are_lifted_one_by_one():
    a, _ = suppress(BUILD["UNACK"](), FAULT, T)
    a, _ = suppress(a, "vote group degraded", T)
    a, evs = unsuppress(a, FAULT, T + 1)
    assert [e.type for e in evs] == ["AlarmUnsuppressed"] and a.state is AlarmState.SUPPRESSED
    a, evs = unsuppress(a, "vote group degraded", T + 2)
    assert evs[-1].type == "AlarmRaised" and a.state is AlarmState.UNACK


def test_out_of_service_on_a_point_that_never_alarmed():
    a, evs = remove_from_service(new_alarm(KEY), "tech", "calibration", T)
    assert a.state is AlarmState.OUT_OF_SERVICE and evs[0].alarm_id == ""
    a, evs = apply_condition(a, change(True, T + 1), T + 1, new_id=numbered())
    assert [e.type for e in evs] == ["AlarmConditionChanged"]
    a, evs = return_to_service(a, "tech", T + 2, new_id=numbered())
    assert evs[-1].type == "AlarmRaised" and a.alarm_id == "A000001"


# ---- §3 events


def test_raise_renders_the_contract_event():
    a, [ev] = apply_condition(None, change(True, T0 + 5000), T0 + 5000, new_id=numbered())
    assert ev.to_contract_event() == {
        "time": "2026-11-23T08:00:05+08:00", "site": SITE, "sensor": "T101-LT", "type": "alarm",
        "level": "H", "priority": "high", "value": 16.61, "limit": 16.5, "alarm_id": "A000001",
        "message": "1号储罐液位高报警 16.61 m ≥ 16.5 m",
    }  # fmt: skip
    a, evs = apply_condition(a, change(False, T0 + 65_250, message="液位恢复正常"), T0 + 65_250)
    rtn = evs[0].to_contract_event()
    assert rtn is not None
    assert (rtn["type"], rtn["time"], rtn["value"], rtn["message"], rtn["alarm_id"]) == (
        "return_to_normal", "2026-11-23T08:01:05.250+08:00", 16.2, "液位恢复正常", "A000001",
    )  # fmt: skip


def test_early_warning_carries_eta_and_band():
    c = change(
        True, T0, kind=ConditionKind.EARLY_WARNING, level="H", eta_ms=T0 + 6 * HOUR,
        eta_low_ms=T0 + 5 * HOUR, eta_high_ms=T0 + 8 * HOUR, priority=Priority.MEDIUM,
    )  # fmt: skip
    _, [ev] = apply_condition(None, c, T0)
    d = ev.to_contract_event("Asia/Shanghai")
    assert d is not None
    assert (d["type"], d["priority"]) == ("early_warning", "medium")
    assert (d["eta"], d["eta_low"], d["eta_high"]) == (
        "2026-11-23T14:00:00+08:00", "2026-11-23T13:00:00+08:00", "2026-11-23T16:00:00+08:00",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "type_"),
    [(ConditionKind.FAULT, "fault"), (ConditionKind.STALE, "stale"), (ConditionKind.VOTE, "alarm")],
)
def test_contract_type_follows_the_condition_kind(kind, type_):
    _, [ev] = apply_condition(None, change(True, T0, kind=kind, value=math.nan), T0)
    d = ev.to_contract_event()
    assert d is not None and d["type"] == type_ and d["value"] is None  # NaN is not JSON


def test_only_raises_and_returns_to_normal_are_contract_events():
    a, evs = apply_condition(None, change(True, T0), T0)
    a, more = acknowledge(a, "op1", T0 + 1)
    evs += more
    a, more = apply_condition(a, change(False, T0 + 2), T0 + 2)
    evs += more
    assert [d["type"] for d in contract_events(evs)] == ["alarm", "return_to_normal"]
    assert {e.type for e in evs if e.to_contract_event() is None} == {"AlarmAcknowledged", "AlarmCleared"}


def test_local_time_uses_the_site_zone():
    assert local_iso(T0, "UTC") == "2026-11-23T00:00:00+00:00"
    assert local_iso(T0 + 7) == "2026-11-23T08:00:00.007+08:00"


def test_event_details_are_json_ready():
    _, [ev] = apply_condition(None, change(True, T0, value=math.inf), T0)
    d = ev.details()
    assert d["priority"] == "high" and d["value"] is None and d["reactivated"] is False
    assert "key" not in d and "alarm_id" not in d

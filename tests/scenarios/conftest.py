"""Print the scenario lead-time table at the end of a run that exercised the scenario library."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.scenarios import harness

    if harness.run_backtest.cache_info().currsize == 0:
        return
    names = [n for n in harness.scenario_names() if harness.load_expected(n)]
    results, false_events = harness.judge_all(names)
    terminalreporter.section("hazmon scenario library: lead times")
    quiet = {k: harness.false_event_summary(v) for k, v in false_events.items()}
    for line in harness.lead_time_table(results, quiet).splitlines():
        terminalreporter.write_line(line)

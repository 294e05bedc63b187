"""Simulated sensor fleets that publish over MQTT like a real field (never importing alerts/ or ingest/).

- signals.py    seeded, vectorised physics of a quiet fleet: FleetModel.step(t) -> one value per sensor
- realism.py    the `--realism` option: classic (default), field, or chosen field features
- field.py      field realism: coloured noise, bursts, modes, setpoints, maintenance, week, seasons, gaps
- modes.py      machines, truck loading, batch reactors, thermostats; tanks.py: operators' receipts and draws
- workweek.py   day shifts and the working week as a smooth 0..1 activity
- incidents.py  leak, overfill, stuck, spike, outage, storm, creep, and the operations setpoint, recal, gap
- schedule.py   which sensors are due at a tick, each at its own interval
- payloads.py   topics, readings payloads (docs/contracts.md §1), sensors grouped by device
- stream.py     Simulation: physics + incidents + schedule -> the MQTT messages of each tick (no I/O)
- fleet.py      the paho client, pacing (speed, rate, never ahead of now), flush, summary
- generate.py   generated fleets of any size and registry YAML writing
- durations.py  `90s`, `10m`, `1h30m` parsing for options
- cli.py        `hazmon simulate` (add_arguments, run); also `python -m simulators`
"""

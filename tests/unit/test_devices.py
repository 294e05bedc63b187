"""ingest/devices.py: the device map keeps every device the registry names and a bounded number of
others, so a flood of junk device names in topics cannot grow it (issue 11, finding 8)."""

from __future__ import annotations

import tracemalloc

from ingest.devices import DeviceRegistry

KNOWN = {("site-0", "gw-01"), ("site-1", "gw-01")}


def test_twenty_thousand_junk_device_names_add_at_most_the_bound_and_are_counted():
    devices = DeviceRegistry(KNOWN, max_unknown_per_site=16, max_unknown=1_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(20_000):
        devices.seen(f"site-{i % 2}", f"junk-{i:05d}", 1_000 + i)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    listed = devices.snapshot()
    assert len(listed) == 32 and devices.untracked == 20_000 - 32
    assert grown < 100_000  # bytes: 32 entries, not 20 000
    devices.seen("site-0", "gw-01", 99_000)  # the registry's own gateways are always kept
    devices.set_status("site-1", "gw-01", "offline", 99_000)
    by_name = {(d.site, d.device): d for d in devices.snapshot()}
    assert by_name["site-0", "gw-01"].messages == 1 and by_name["site-1", "gw-01"].status == "offline"


def test_the_bound_over_all_sites_and_the_length_of_a_name_hold_too():
    devices = DeviceRegistry(max_unknown_per_site=10, max_unknown=25)
    for site in range(5):
        for i in range(10):
            devices.seen(f"site-{site}", f"d{i}", 1)
    assert len(devices.snapshot()) == 25 and devices.untracked == 25
    fresh = DeviceRegistry()
    assert fresh.set_status("site-0", "x" * 65, "online", 1) is False and fresh.snapshot() == []

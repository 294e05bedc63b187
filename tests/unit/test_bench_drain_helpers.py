"""The pure helpers of bench/ingest_drain.py: counting lost and doubled points, percentiles."""

from bench.ingest_drain import compare_counts, payload_counts, percentile


def test_lost_and_doubled_are_counted_per_series():
    expected = {("a", "S1"): 3, ("a", "S2"): 3, ("b", "S1"): 2}
    stored = {("a", "S1"): 3, ("a", "S2"): 1, ("b", "S1"): 4, ("c", "S9"): 1}
    assert compare_counts(expected, stored) == {"lost": 2, "doubled": 3}
    assert compare_counts(expected, dict(expected)) == {"lost": 0, "doubled": 0}


def test_percentile_by_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_payload_counts_reads_site_from_topic():
    two = b'{"ts": 1, "readings": [{"sensor": "S1", "v": 1}, {"sensor": "S2", "v": 2}]}'
    payloads = [
        ("hazmon/v1/a/gw/readings", two),
        ("hazmon/v1/a/gw/readings", b'{"ts": 2, "readings": [{"sensor": "S1", "v": 1}]}'),
    ]
    assert payload_counts(payloads) == {("a", "S1"): 2, ("a", "S2"): 1}

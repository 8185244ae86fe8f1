"""Small-count suppression: no published table lets a hidden count be worked out (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from services.metrics import domain

T = 5
cells = st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(0, 40), min_size=1, max_size=7)


def possible_values(published: dict, key: str) -> tuple[float, float]:
    return domain.feasible_range(published["counts"], published["total"], T, key)


@settings(max_examples=1500)
@given(cells)
def test_no_hidden_count_can_be_worked_out_and_every_small_count_is_hidden(counts):
    published = domain.suppress_table(counts, T)
    marks, total = published["counts"], published["total"]
    for key, n in counts.items():
        if 0 < n < T:
            assert marks[key] == "<5"  # every small count
        if isinstance(marks[key], int):
            assert marks[key] == n  # shown counts are the true ones
            continue
        low, high = possible_values(published, key)
        assert low <= n <= high and low < high, (counts, published, key)
        if marks[key] == "x":
            assert n >= T
    if isinstance(total, int):
        assert total == sum(counts.values())
    elif 0 < sum(counts.values()) < T:
        assert total == "<5"
    for key, share in published["shares"].items():  # shares never reveal a hidden count or total
        assert share is None or (isinstance(marks[key], int) and isinstance(total, int))


@settings(max_examples=500)
@given(cells, cells)
def test_breakdowns_of_one_population_hide_their_total_together(a, b):
    # two breakdowns of the same people: make their totals equal
    diff = sum(a.values()) - sum(b.values())
    b = dict(b)
    b["Z"] = b.get("Z", 0) + max(diff, 0)
    a = dict(a)
    a["Z"] = a.get("Z", 0) + max(-diff, 0)
    published = domain.suppress_together({"a": a, "b": b}, T)
    totals = {name: table["total"] for name, table in published.items()}
    assert len({isinstance(t, str) for t in totals.values()}) == 1, totals


def test_examples():
    assert domain.suppress_table({"AF": 7, "FK": 2, "KOMMUN": 5, "REGION": 0})["counts"] == {
        "AF": 7, "FK": "<5", "KOMMUN": "x", "REGION": 0}
    assert domain.suppress_table({"a": 3, "b": 0})["total"] == "<5"
    assert domain.suppress_table({"a": 1, "b": 6})["total"] == 7  # a is 1 or 2: safe
    assert domain.suppress_table({"a": 1, "b": 5})["total"] == "x"  # nothing else to hide
    assert domain.share(18, 20) == {"count": "x", "of": 20, "share": None}  # 2 not attending
    assert domain.parse_period("2026Q3").end.isoformat() == "2026-09-30"
    assert [p.label for p in domain.quarters_back(domain.parse_period("2026Q1"), 3)] == [
        "2025Q3", "2025Q4", "2026Q1"]

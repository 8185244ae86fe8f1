"""Small-count protection of linked tables (``services/metrics/disclosure.py``), audited by a
linear program that combines every published count and every sum at once: the strongest
reader of the published marks. Hypothesis draws hierarchical cubes like the metrics
publication's (team < municipality < all, month < quarter, cells < total)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import sparse
from scipy.optimize import linprog

from services.metrics import disclosure

T = 5


def lp_range(marks: dict, sums, key, threshold: int = T) -> tuple[float, float]:
    """The lowest and highest value of ``key`` that agrees with every published mark and every
    sum, as a linear program (HiGHS)."""
    keys = list(marks)
    index = {k: i for i, k in enumerate(keys)}
    bounds = []
    for k in keys:
        m = marks[k]
        if isinstance(m, int):
            bounds.append((m, m))
        elif m == f"<{threshold}":
            bounds.append((0, threshold - 1))
        elif m == disclosure.WITHHELD:
            bounds.append((0, None))
        else:
            bounds.append((threshold, None))
    rows, cols, data = [], [], []
    for n, (total, parts) in enumerate(sums):
        rows.append(n)
        cols.append(index[total])
        data.append(1.0)
        for p in parts:
            rows.append(n)
            cols.append(index[p])
            data.append(-1.0)
    a_eq = sparse.csr_array((data, (rows, cols)), shape=(len(sums), len(keys))) if sums else None
    b_eq = np.zeros(len(sums)) if sums else None
    c = np.zeros(len(keys))
    c[index[key]] = 1
    low = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    high = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    assert low.status == 0 and high.status in (0, 3), (low.message, high.message)
    return low.fun, (math.inf if high.status == 3 else -high.fun)


def audit(values: dict, sums, marks: dict, threshold: int = T) -> None:
    for key, n in values.items():
        mark = marks[key]
        if 0 < n < threshold:  # withheld only where even "<5" and "x" would tell
            assert mark in (f"<{threshold}", disclosure.WITHHELD), (key, n, mark)
        if isinstance(mark, int):
            assert mark == n
            continue
        if mark == disclosure.SECONDARY:
            assert n >= threshold
        elif mark == f"<{threshold}":
            assert n < threshold
        if not 0 < n < threshold:
            continue  # the rule is about counts under the threshold (a zero or an "x" worked out tells none)
        low, high = lp_range(marks, sums, key, threshold)
        assert low - 1e-6 <= n <= high + 1e-6
        # at least two whole values possible: the count cannot be worked out
        assert high == math.inf or math.floor(high + 1e-6) > math.ceil(low - 1e-6), (key, n, low, high)


def cube(dimensions: list[dict[str, list[str]]], leaf_values) -> tuple[dict, list]:
    """Counts over the product of hierarchies (each: node -> children, leaves have none),
    summed up from the leaves, with every sum a reader knows."""
    nodes = [list(d) for d in dimensions]
    leaves = [[n for n, kids in d.items() if not kids] for d in dimensions]

    def under(d: int, node: str) -> list[str]:
        kids = dimensions[d][node]
        return [node] if not kids else [leaf for k in kids for leaf in under(d, k)]

    values = {}
    for key in itertools.product(*nodes):
        values[key] = sum(leaf_values[leaf] for leaf in itertools.product(
            *(under(d, n) for d, n in enumerate(key))))
    sums = []
    for d, dim in enumerate(dimensions):
        for node, kids in dim.items():
            if not kids:
                continue
            others = [nodes[e] if e != d else [None] for e in range(len(dimensions))]
            for rest in itertools.product(*others):
                total = tuple(node if e == d else rest[e] for e in range(len(dimensions)))
                parts = [tuple(k if e == d else rest[e] for e in range(len(dimensions))) for k in kids]
                sums.append((total, parts))
    assert leaves
    return values, sums


GEO = {"ALL": ["M1", "M2"], "M1": ["t1", "t2"], "M2": ["t3"], "t1": [], "t2": [], "t3": []}
TIME = {"Q": ["m1", "m2", "m3"], "m1": [], "m2": [], "m3": []}
CATS = {"total": ["a", "b", "c"], "a": [], "b": [], "c": []}
small = st.integers(0, 12) | st.sampled_from([0, 0, 1, 2, 3])


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small, min_size=27, max_size=27))
def test_no_hidden_count_in_a_team_by_month_by_category_cube_can_be_worked_out(counts):
    leaf_keys = list(itertools.product(["t1", "t2", "t3"], ["m1", "m2", "m3"], ["a", "b", "c"]))
    values, sums = cube([GEO, TIME, CATS], dict(zip(leaf_keys, counts)))
    marks = disclosure.protect(values, sums, T)
    audit(values, sums, marks)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(small, min_size=12, max_size=12))
def test_no_hidden_count_in_a_team_by_category_table_can_be_worked_out(counts):
    leaf_keys = list(itertools.product(["t1", "t2", "t3"], ["a", "b", "c", "d"]))
    cats = {"total": ["a", "b", "c", "d"], "a": [], "b": [], "c": [], "d": []}
    values, sums = cube([GEO, cats], dict(zip(leaf_keys, counts)))
    audit(values, sums, disclosure.protect(values, sums, T))


def test_the_differences_a_review_found_are_closed():
    # all teams minus one team: AF 7, FK 2 in team t1; KOMMUN 6 in t3
    leaf = {("t1", "AF"): 7, ("t1", "FK"): 2, ("t3", "KOMMUN"): 6}
    parties = {"total": ["AF", "FK", "KOMMUN"], "AF": [], "FK": [], "KOMMUN": []}
    values, sums = cube([GEO, parties], {k: leaf.get(k, 0) for k in itertools.product(
        ["t1", "t2", "t3"], ["AF", "FK", "KOMMUN"])})
    marks = disclosure.protect(values, sums, T)
    assert marks[("ALL", "FK")] == "<5" and marks[("t1", "FK")] == "<5"
    audit(values, sums, marks)
    # a share's whole shown elsewhere: 4 of 8 attended, 8 consulted shown by another table
    values = {"consulted": 8, "attended": 4, "absent": 4, "men": 1, "women": 7}
    sums = [("consulted", ["attended", "absent"]), ("consulted", ["men", "women"])]
    marks = disclosure.protect(values, sums, T)
    assert marks["attended"] == "<5" and marks["men"] == "<5" and marks["consulted"] == "x"
    audit(values, sums, marks)


def test_small_counts_are_hidden_and_one_more_where_the_total_would_give_them_away():
    sums = [("t", ["AF", "FK"])]
    assert disclosure.protect({"t": 15, "AF": 3, "FK": 12}, sums, T) == {"t": 15, "AF": "<5", "FK": "x"}
    assert disclosure.protect({"t": 6, "AF": 1, "FK": 5}, sums, T) == {"t": 6, "AF": "<5", "FK": "x"}  # 0..1
    assert disclosure.protect({"t": 3, "AF": 3, "FK": 0}, sums, T)["t"] == "<5"
    # a zero is hidden first ("<5": fewer than five), which costs the reader less
    sums = [("t", ["AF", "FK", "KOMMUN"])]
    assert disclosure.protect({"t": 15, "AF": 3, "FK": 12, "KOMMUN": 0}, sums, T) == {
        "t": 15, "AF": "<5", "FK": 12, "KOMMUN": "<5"}


def test_propagation_knows_what_a_reader_knows():
    marks = {"t": 10, "a": "<5", "b": "x"}
    bounds = disclosure.reader_bounds(marks, [("t", ["a", "b"])], T)
    assert bounds["a"] == (0, 4) and bounds["b"] == (6, 10)  # "<5": fewer than five
    assert disclosure.exposed({"t": 5, "a": "<5", "b": "x"}, [("t", ["a", "b"])], T) == ["a", "b"]


def test_marks_of_another_threshold_are_not_kept():
    sums = [("t", ["a", "b"])]
    previous = {"t": (7, 7), "a": (3, "<5"), "b": (4, "<5")}  # published with threshold 5
    assert disclosure.protect({"t": 7, "a": 3, "b": 4}, sums, 3, previous) == {"t": 7, "a": 3, "b": 4}


def test_where_no_pattern_is_found_nothing_linked_is_shown(monkeypatch):
    def unprotectable(*_args):
        raise disclosure.Unprotectable("nothing left to hide")

    monkeypatch.setattr(disclosure, "_protect_linked", unprotectable)
    sums = [("t", ["a", "b"])]
    marks = disclosure.protect({"t": 15, "a": 3, "b": 12}, sums, T)
    assert marks == {"t": "–", "a": "–", "b": "–"}
    assert disclosure.exposed(marks, sums, T) == []


def test_a_protection_that_does_not_settle_in_time_withholds_the_linked_counts(monkeypatch):
    values, sums = {"t": 15, "a": 3, "b": 12}, [("t", ["a", "b"])]
    monkeypatch.setattr(disclosure, "ROUND_LIMIT", 2)  # hide "b", then nothing more is exposed
    assert disclosure.protect(values, sums, T) == {"t": 15, "a": "<5", "b": "x"}
    monkeypatch.setattr(disclosure, "ROUND_LIMIT", 1)
    assert disclosure.protect(values, sums, T) == {"t": "–", "a": "–", "b": "–"}

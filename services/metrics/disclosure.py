"""Small-count protection of a whole publication (pure rules, no I/O).

A publication is a set of counts that a reader sees together: every figure of every period
(month, quarter, year), for all teams, each municipality and each team. Counts are linked by
sums: a table's total is the sum of its cells, a quarter the sum of its months, a municipality
the sum of its teams, a share's whole the sum of its part and the rest. A reader who knows
these sums can combine *any* of them, so a hidden count is protected only if no combination of
everything published pins it down.

``protect`` hides every count 0 < n < threshold (``"<5"``), then works out what a reader can
know of each hidden count from all published counts and every sum (bounds propagation over
the sums until nothing changes, knowing ``"<5"`` is 0..threshold-1 and ``"x"`` is threshold or
more). While a hidden count can be worked out exactly, the smallest shown count in a sum that
holds it is hidden too: a zero as ``"<5"`` (it is fewer than five; were zeros always shown, a
reader would know every ``"<5"`` is at least one, and a ``"<5"`` total of four parts at least
one each would give them all away), a larger count as ``"x"``; and it is worked out again.

The bounds a reader gets by propagation are exact where the sums form chains and trees; the
property tests check the result against a linear program that combines every sum at once
(tests/unit/test_disclosure.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Sequence

SECONDARY = "x"
WITHHELD = "–"  # not published: any count, 0 or more (where even the hidden marks would tell)
INF = float("inf")

Key = Hashable
Sum = tuple[Key, Sequence[Key]]  # (total, parts): total == sum(parts)


def primary_mark(threshold: int) -> str:
    return f"<{threshold}"


class Reader:
    """A reader who knows the sums among a set of counts and sees their published marks."""

    def __init__(self, keys: Iterable[Key], sums: Iterable[Sum], threshold: int):
        self.keys = list(keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.relations = [[self.index[total], *(self.index[p] for p in parts)] for total, parts in sums]
        self.member_of: list[list[int]] = [[] for _ in self.keys]
        for n, r in enumerate(self.relations):
            for i in r:
                self.member_of[i].append(n)
        self.threshold = threshold
        self._bounds: tuple[list[float], list[float]] | None = None  # of the last call of ``bounds``

    def region(self, marks: dict[Key, int | str], around: Iterable[Key] | None = None) -> list[int]:
        """The hidden counts (their indexes) linked to any of ``around`` (all, if None) through
        sums, by way of hidden counts. Shown counts are known, so what a reader can work out of
        a hidden count depends on its region alone: where marks change, only the regions
        around them need working out again."""
        keys, relations, member_of = self.keys, self.relations, self.member_of
        if around is None:
            return [i for i, k in enumerate(keys) if not isinstance(marks[k], int)]
        found = {self.index[k] for k in around if not isinstance(marks[k], int)}
        frontier, seen_relations = list(found), set()
        while frontier:
            next_frontier = []
            for i in frontier:
                for n in member_of[i]:
                    if n in seen_relations:
                        continue
                    seen_relations.add(n)
                    for j in relations[n]:
                        if j not in found and not isinstance(marks[keys[j]], int):
                            found.add(j)
                            next_frontier.append(j)
            frontier = next_frontier
        return sorted(found)

    def regions(self, marks: dict[Key, int | str], around: Iterable[Key] | None = None) -> list[list[int]]:
        """``region``, in the parts that no sum of hidden counts links."""
        left = set(self.region(marks, around))
        parts = []
        while left:
            part = self.region(marks, [self.keys[min(left)]])
            parts.append(part)
            left.difference_update(part)
        return parts

    def _of_mark(self, mark: int | str) -> tuple[float, float]:
        """What a mark alone tells of a count."""
        if isinstance(mark, int):
            return mark, mark
        if mark == primary_mark(self.threshold):
            return 0, self.threshold - 1
        return (0, INF) if mark == WITHHELD else (self.threshold, INF)

    def bounds(self, marks: dict[Key, int | str],
               region: list[int] | None = None) -> list[tuple[float, float]]:
        """Each count's lowest and highest possible value (in ``keys`` order), by bounds
        propagation over the sums to a fixed point. With ``region`` (``Reader.region``), only
        the bounds of its counts are worked out; the others keep those of the previous call
        (right while marks only ever hide more, as in ``protect``: a shown count's bounds are
        its value, and a hidden count outside the region is in no sum with one inside)."""
        if region is None or self._bounds is None:
            self._bounds = [], []
            for k in self.keys:
                low, high = self._of_mark(marks[k])
                self._bounds[0].append(low)
                self._bounds[1].append(high)
        lo, hi = self._bounds
        if region is None:  # only sums with something unknown can teach a reader anything
            self._propagate([n for n, r in enumerate(self.relations) if any(lo[i] != hi[i] for i in r)])
        else:
            for i in region:
                lo[i], hi[i] = self._of_mark(marks[self.keys[i]])
            self._propagate(sorted({n for i in region for n in self.member_of[i]}))
        return list(zip(lo, hi))

    def _propagate(self, relations: list[int], only: set[int] | None = None) -> None:
        """Tighten the bounds by these sums, and by every sum (of ``only``, if given) holding a
        count whose bounds changed, until nothing changes."""
        lo, hi = self._bounds
        member_of, all_relations = self.member_of, self.relations
        queued = [False] * len(all_relations)
        for n in relations:
            queued[n] = True
        queue = deque(relations)
        while queue:
            n = queue.popleft()
            queued[n] = False
            for i in _tighten(all_relations[n], lo, hi):
                for m in member_of[i]:
                    if not queued[m] and (only is None or m in only):
                        queued[m] = True
                        queue.append(m)

    def exposed_near(self, marks: dict[Key, int | str], around: Iterable[Key], depth: int = 2) -> list[Key]:
        """The hidden counts near ``around`` (up to ``depth`` sums away, through hidden counts)
        that can be worked out from the sums that hold them alone, every count beyond taken as
        its mark says. A reader who combines more sums knows at least as much, so each count
        found is exposed; one not found may still be (``exposed`` decides). Quick where little
        has changed. Call after ``bounds``."""
        keys, relations, member_of = self.keys, self.relations, self.member_of
        near = {self.index[k] for k in around if not isinstance(marks[k], int)}
        frontier = list(near)
        for _ in range(depth):
            farther = []
            for i in frontier:
                for n in member_of[i]:
                    for j in relations[n]:
                        if j not in near and not isinstance(marks[keys[j]], int):
                            near.add(j)
                            farther.append(j)
            frontier = farther
        sums = {n for i in near for n in member_of[i]}
        lo, hi = self._bounds
        for n in sums:
            for i in relations[n]:
                lo[i], hi[i] = self._of_mark(marks[keys[i]])
        self._propagate(sorted(sums), only=sums)
        return [keys[i] for i in sorted(near) if lo[i] >= hi[i]]

    def exposed(self, marks: dict[Key, int | str], region: list[int] | None = None) -> list[Key]:
        """The hidden counts (of ``region``, if given) this reader can work out exactly."""
        bounds = self.bounds(marks, region)
        return [self.keys[i] for i in (range(len(self.keys)) if region is None else region)
                if isinstance(marks[self.keys[i]], str) and bounds[i][0] >= bounds[i][1]]


def reader_bounds(marks: dict[Key, int | str], sums: Iterable[Sum],
                  threshold: int) -> dict[Key, tuple[float, float]]:
    """What a reader of the published marks knows of each count: its lowest and highest
    possible value given every sum."""
    reader = Reader(marks, sums, threshold)
    return dict(zip(reader.keys, reader.bounds(marks)))


def _tighten(relation: list[int], lo: list[float], hi: list[float]) -> list[int]:
    """One sum, total == sum(parts): narrow each member's bounds by the others'. Returns the
    members whose bounds changed."""
    total = relation[0]
    sum_lo = finite_hi = unbounded = 0
    for p in relation[1:]:
        sum_lo += lo[p]
        h = hi[p]
        if h == INF:
            unbounded += 1
        else:
            finite_hi += h
    changed = []
    t_lo, t_hi = lo[total], hi[total]
    new_lo = t_lo if t_lo >= sum_lo else sum_lo
    new_hi = t_hi if unbounded or t_hi <= finite_hi else finite_hi
    if new_lo != t_lo or new_hi != t_hi:
        lo[total], hi[total] = t_lo, t_hi = new_lo, new_hi
        changed.append(total)
    for p in relation[1:]:
        p_lo, p_hi = lo[p], hi[p]
        if p_hi == INF:
            others_hi = INF if unbounded > 1 else finite_hi
        else:
            others_hi = INF if unbounded else finite_hi - p_hi
        low = t_lo - others_hi if others_hi != INF else p_lo
        high = t_hi - (sum_lo - p_lo)
        if low > p_lo or high < p_hi:
            lo[p], hi[p] = max(p_lo, low), min(p_hi, high)
            changed.append(p)
    return changed


def exposed(marks: dict[Key, int | str], sums: Sequence[Sum], threshold: int) -> list[Key]:
    """The hidden counts a reader can work out exactly (a zero among them gives nothing away:
    ``protect`` leaves those)."""
    return Reader(marks, sums, threshold).exposed(marks)


def protect(values: dict[Key, int], sums: Sequence[Sum], threshold: int,
            previous: dict[Key, tuple[int, int | str]] | None = None) -> dict[Key, int | str]:
    """The published mark of every count: the count, ``"<5"``, ``"x"`` or ``"–"``; no hidden
    count can be worked out from the rest and the sums. ``values`` must satisfy every sum.

    ``previous``: the value and mark of each count as last published. A reader may have kept
    that publication, so a count whose value has not changed keeps its mark (a count shown
    before is known; hiding it now would not hide it, and showing one hidden before could
    give away another through the old marks). Only changed and new counts are chosen anew;
    should that not suffice, the whole is protected afresh (see docs/metrics.md)."""
    for total, parts in sums:
        if values[total] != sum(values[p] for p in parts):
            raise ValueError(f"the sum {total!r} does not hold: {values[total]} != parts")
    marks: dict[Key, int | str] = {}
    for keys, linked in _components(values, sums):
        component = {k: values[k] for k in keys}
        marks_now = (primary_mark(threshold), SECONDARY, WITHHELD)  # (a mark of another threshold is not kept)
        kept = {k: previous[k][1] for k in keys if previous and k in previous and previous[k][0] == values[k]
                and (isinstance(previous[k][1], int) or previous[k][1] in marks_now)}
        try:
            marks |= _protect_linked(component, linked, threshold, kept)
        except Unprotectable:
            try:
                marks |= _protect_linked(component, linked, threshold, {})
            except Unprotectable:  # should no pattern be found, nothing linked to the count is shown
                marks |= {k: WITHHELD for k in keys}
    return marks


class Unprotectable(RuntimeError):
    """Nothing is left to hide (with the marks that had to be kept)."""


def _components(values: dict[Key, int], sums: Sequence[Sum]) -> list[tuple[list[Key], list[Sum]]]:
    """The counts split into groups that no sum links (each protected on its own: faster)."""
    parent = {k: k for k in values}

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for total, parts in sums:
        for p in parts:
            a, b = root(total), root(p)
            if a != b:
                parent[a] = b
    groups: dict[Key, tuple[list[Key], list[Sum]]] = {}
    for k in values:
        groups.setdefault(root(k), ([], []))[0].append(k)
    for total, parts in sums:
        groups[root(total)][1].append((total, parts))
    return list(groups.values())


def _protect_linked(values: dict[Key, int], sums: Sequence[Sum], threshold: int,
                    kept: dict[Key, int | str]) -> dict[Key, int | str]:
    primary = primary_mark(threshold)
    marks: dict[Key, int | str] = {k: (primary if 0 < n < threshold else n) for k, n in values.items()}
    marks |= kept
    fixed = set(kept)  # never chosen to hide or withhold
    holding: dict[Key, list[int]] = {}
    for n, (total, parts) in enumerate(sums):
        for k in (total, *parts):
            holding.setdefault(k, []).append(n)
    reader = Reader(values, sums, threshold)
    order = reader.index
    exposed: set[Key] = set()  # as last worked out, region by region
    changed: set[Key] = set()  # marks changed in the last round
    # marks changed since the regions were last worked out, and since the linear programs last
    # found nothing (None: every count)
    due: set[Key] | None = None
    lp_due: set[Key] | None = None
    for _ in range(ROUND_LIMIT):
        # first what the sums near the last round's changes give away (quick); only when they
        # give nothing away, the whole regions around every change since they were worked out
        found = [k for k in reader.exposed_near(marks, changed) if values[k] > 0] if changed else []
        if not found:
            region = reader.region(marks, due)
            exposed.difference_update(reader.keys[i] for i in region)
            exposed.update(reader.exposed(marks, region))
            due = set()
            found = sorted((k for k in exposed if values[k] > 0), key=order.__getitem__)
        if not found:  # the stronger reader, in each region small enough for it to be quick
            found = [k for region in reader.regions(marks, lp_due) if len(region) <= LP_LIMIT
                     for k in _lp_exposed(reader, marks, values, threshold, region)]
            if not found:
                lp_due = set()
        if not found:
            return marks
        changed = set()
        touched: set[int] = set()  # sums that hide one more count this round
        hopeless: set[Key] = set()  # hidden counts with no shown count anywhere around
        for key in found:
            if any(n in touched for n in holding.get(key, ())):
                continue  # likely no longer exposed: see in the next round
            victim = _smallest_shown_in(holding.get(key, ()), marks, sums, fixed)
            if victim is None:  # nothing shown in its own sums: "x" (5 or more) there tells; withhold it
                for n in holding.get(key, ()):
                    total, parts = sums[n]
                    for member in (total, *parts):
                        if marks[member] == SECONDARY and member not in fixed:
                            marks[member] = WITHHELD
                            touched.update(holding[member])
                            changed.add(member)
                if any(n in touched for n in holding.get(key, ())):
                    continue
            if victim is None and key not in hopeless:  # else the nearest shown count farther out
                victim = _nearest_shown(key, marks, sums, holding, fixed, hopeless, changed)
                if victim is _HIDDEN_NOW:
                    continue  # what was nearest is hidden already this round: see in the next round
            if victim is not None:
                marks[victim] = SECONDARY if marks[victim] else primary
                touched.update(holding[victim])
                changed.add(victim)
        # a count hidden now and alone hidden in another of its sums is given away by that sum:
        # hide one more there at once (what the next round would find, without working it out)
        lone = [k for k in changed if values[k] > 0]
        while lone:
            hidden = lone.pop()
            for n in holding[hidden]:
                total, parts = sums[n]
                if any(isinstance(marks[m], str) for m in (total, *parts) if m != hidden):
                    continue
                victim = _smallest_shown_in((n,), marks, sums, fixed)
                if victim is not None:
                    marks[victim] = SECONDARY if marks[victim] else primary
                    changed.add(victim)
                    if values[victim] > 0:
                        lone.append(victim)
        if not changed:  # every count around is hidden, yet "x" (5 or more) still tells: withhold those
            for key in found:
                for victim in _reachable(key, marks, sums, holding):
                    if marks[victim] == SECONDARY and victim not in fixed:
                        marks[victim] = WITHHELD
                        changed.add(victim)
        if not changed:
            raise Unprotectable("a hidden count cannot be protected: nothing left to hide")
        for since in (due, lp_due):
            if since is not None:
                since |= changed
    # a pattern that takes this long hides one count after another for nothing (it once ran for
    # minutes): start again without the marks kept, or withhold (``protect``)
    raise Unprotectable(f"not protected in {ROUND_LIMIT} rounds")


LP_LIMIT = 2_000  # hidden counts in a region: up to this many, also checked by a linear program
ROUND_LIMIT = 500  # rounds of hiding more (a county year takes up to about 60)


def _lp_exposed(reader: Reader, marks, values, threshold: int, region: list[int]) -> list[Key]:
    """The counts under the threshold (of ``region``, ``Reader.region``) that a linear program
    over every published count and every sum at once pins down (propagation, sum by sum, can
    miss some where sums form cycles, e.g. teams by quarters). A region's hidden counts are
    linked to nothing hidden outside it, so its sums alone decide."""
    import numpy as np
    from scipy import sparse
    from scipy.optimize import linprog

    small = [i for i in region if isinstance(marks[reader.keys[i]], str) and 0 < values[reader.keys[i]] < threshold]
    if not small:
        return []
    relations = sorted({n for i in region for n in reader.member_of[i]})
    if not relations:
        return []
    columns = sorted({i for n in relations for i in reader.relations[n]})
    column = {i: c for c, i in enumerate(columns)}
    rows, cols, data = [], [], []
    for row, n in enumerate(relations):
        for position, i in enumerate(reader.relations[n]):
            rows.append(row)
            cols.append(column[i])
            data.append(1.0 if position == 0 else -1.0)
    a_eq = sparse.csr_array((data, (rows, cols)), shape=(len(relations), len(columns)))
    b_eq = np.zeros(len(relations))
    everything = reader.bounds(marks, region)
    bounds = [(everything[i][0], None if everything[i][1] == INF else everything[i][1]) for i in columns]
    # a few solutions first, each pushing the small counts every which way: a count seen with
    # two whole values apart in them is not pinned down; only the others get their own programs
    rng = np.random.default_rng(len(columns))
    seen_low, seen_high = np.full(len(columns), INF), np.full(len(columns), -INF)
    for signs in (np.ones(len(small)), -np.ones(len(small)), *rng.choice([-1.0, 1.0], (4, len(small)))):
        c = np.zeros(len(columns))
        c[[column[i] for i in small]] = signs
        solution = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if solution.status == 0:
            seen_low, seen_high = np.minimum(seen_low, solution.x), np.maximum(seen_high, solution.x)
    found = []
    for i in small:
        if math.floor(seen_high[column[i]] + 1e-6) > math.ceil(seen_low[column[i]] - 1e-6):
            continue
        c = np.zeros(len(columns))
        c[column[i]] = 1.0
        low = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        high = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if low.status == 0 and high.status == 0 and math.floor(-high.fun + 1e-6) <= math.ceil(low.fun - 1e-6):
            found.append(reader.keys[i])
    return found


def _smallest_shown_in(sum_ids, marks, sums, fixed) -> Key | None:
    """The smallest shown count (zero first) in these sums, but for those ``fixed``."""
    best = None
    for n in sum_ids:
        total, parts = sums[n]
        for member in (total, *parts):
            mark = marks[member]
            if isinstance(mark, int) and member not in fixed and (best is None or (mark, str(member)) < best[0]):
                best = ((mark, str(member)), member)
    return best[1] if best else None


_HIDDEN_NOW = object()


def _nearest_shown(key: Key, marks, sums, holding, fixed, hopeless: set, hidden_now: set):
    """The smallest shown count (but for those ``fixed``) of the sums nearest to ``key``
    through hidden counts, searching outwards sum by sum; ``_HIDDEN_NOW`` if those sums hold a
    count of ``hidden_now`` (hidden this round, for another count: likely enough). If there is
    none, every hidden count searched is added to ``hopeless`` (none of them has one either)."""
    seen, frontier, seen_sums = {key}, [key], set()
    while frontier:
        level = [n for k in frontier for n in holding.get(k, ()) if n not in seen_sums]
        seen_sums.update(level)
        if any(m in hidden_now for n in level for m in (sums[n][0], *sums[n][1])):
            return _HIDDEN_NOW
        shown = _smallest_shown_in(level, marks, sums, fixed)
        if shown is not None:
            return shown
        frontier = []
        for n in level:
            total, parts = sums[n]
            for m in (total, *parts):
                if m not in seen and isinstance(marks[m], str):
                    seen.add(m)
                    frontier.append(m)
    hopeless |= seen
    return None


def _reachable(key: Key, marks, sums, holding) -> list[Key]:
    """Every hidden count linked to ``key`` through sums of hidden counts."""
    seen, frontier, seen_sums = {key}, [key], set()
    while frontier:
        next_frontier = []
        for _, m in _hidden_beyond(frontier, marks, sums, holding, seen_sums):
            if m not in seen:
                seen.add(m)
                next_frontier.append(m)
        frontier = next_frontier
    return list(seen)


def _hidden_beyond(frontier, marks, sums, holding, seen_sums: set):
    """(k, m) for each hidden count m in a sum, not searched before, holding a k of ``frontier``."""
    for k in frontier:
        for n in holding.get(k, ()):
            if n in seen_sums:
                continue
            seen_sums.add(n)
            total, parts = sums[n]
            for m in (total, *parts):
                if isinstance(marks[m], str):
                    yield k, m

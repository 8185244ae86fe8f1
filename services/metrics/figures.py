"""The exact figures (pure): the catalogue's figures worked out from sums of cells.

``store.Cells.sums`` answers one query per request: the sum of every measure's cells in the
period (and scope and filters), in total and per value of each dimension. ``exact`` turns
those sums into the answer the API, CSV, the report and the dashboard give: each figure's
value, its share of its whole, or its median, in total and broken down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from . import catalogue, domain
from .catalogue import FIGURES, Figure

# A sum of cells: (measure, detail, dimension or None for the total, the dimension's value).
Sum = tuple[str, str, str | None, str | None, int]


class Sums:
    """The sums of one query, looked up by measure, detail and dimension."""

    def __init__(self, rows: Iterable[Sum]):
        self._n: dict[tuple, int] = defaultdict(int)
        self.keys: dict[str, set[str]] = defaultdict(set)  # the values seen per dimension
        self.details: dict[str, set[str]] = defaultdict(set)
        for measure, detail, dimension, key, n in rows:
            self._n[(measure, detail, dimension, key)] += n
            self._n[(measure, None, dimension, key)] += n  # over every detail
            if dimension is not None:
                self.keys[dimension].add(key)
            if detail:
                self.details[measure].add(detail)

    def get(self, measure: str, detail: str | None = None, dimension: str | None = None, key: str | None = None) -> int:
        return self._n.get((measure, detail, dimension, key), 0)


def exact(
    sums: Sums,
    *,
    outcome_basis: str = "cohort",
    filtered: bool = False,
    known: dict[str, list[str]] | None = None,
    visible=lambda dimension, key: True,
) -> dict:
    """Every figure of the catalogue from the sums: {key: answer}.

    ``filtered``: a filter on a case dimension was applied (figures of meetings then do not
    apply). ``known``: values of a dimension to show even with no cells (the teams of the
    scope). ``visible(dimension, key)``: whether the reader may see that line of a breakdown.
    """
    known = known or {}
    answers: dict[str, dict] = {}
    for figure in FIGURES:
        if filtered and not figure.case_figure:
            answers[figure.key] = {"applies": False, "value": None}
            continue
        answers[figure.key] = _answer(figure, sums, outcome_basis, known, visible, answers)
    return answers


def _keys(figure: Figure, dimension: str, sums: Sums, known: dict[str, list[str]], visible) -> list[str]:
    values = catalogue.VALUES.get(dimension)
    if values is None:  # team, municipality: those of the scope and those seen
        values = tuple(sorted(set(known.get(dimension, ())) | sums.keys.get(dimension, set())))
    return [k for k in values if visible(dimension, k)]


def _answer(figure: Figure, sums: Sums, basis: str, known, visible, answers: dict) -> dict:
    measure = figure.cell_measure(basis)
    dims = list(figure.by)
    if figure.kind == "median":

        def median_of(dimension=None, key=None) -> dict:
            details = sums.details.get(measure, set())
            dist = {int(d): sums.get(measure, d, dimension, key) for d in details}
            return {"median": domain.median(dist), "n": sum(dist.values())}

        answer = median_of()
        answer["by"] = {d: {k: median_of(d, k) for k in _keys(figure, d, sums, known, visible)} for d in dims}
        return answer

    def count(detail=None, dimension=None, key=None) -> int:
        return sums.get(measure, detail, dimension, key)

    answer: dict = {"value": count(), "by": {}}
    for d in dims:
        answer["by"][d] = {k: count(None, d, k) for k in _keys(figure, d, sums, known, visible)}
    if figure.detail:
        answer["by"][figure.detail] = {v: count(v) for v in catalogue.VALUES[figure.detail]}
    if figure.kind == "share":
        base = answers[figure.base]
        answer = _as_share(answer, base, figure)
    return answer


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _as_share(answer: dict, base: dict, figure: Figure) -> dict:
    """A count as a share of its whole: value, of, share; by each breakdown too."""
    result = {"value": answer["value"], "of": base["value"], "share": _share(answer["value"], base["value"]), "by": {}}
    for dimension, lines in answer["by"].items():
        if dimension == figure.detail:  # every detail value is a part of the same whole
            result["by"][dimension] = {
                k: {"value": v, "of": base["value"], "share": _share(v, base["value"])} for k, v in lines.items()
            }
        else:
            wholes = base["by"].get(dimension, {})
            result["by"][dimension] = {
                k: {"value": v, "of": _whole(wholes.get(k, 0)), "share": _share(v, _whole(wholes.get(k, 0)))}
                for k, v in lines.items()
            }
    return result


def _whole(line) -> int:
    return line["value"] if isinstance(line, dict) else line


def flatten(answers: dict) -> list[tuple[str, object]]:
    """(path, value) rows of the answers, for CSV."""
    rows: list[tuple[str, object]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append((prefix, value))

    walk("", answers)
    return rows

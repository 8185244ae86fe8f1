"""The whole publication of a year (every figure, period and scope) from random facts: no
hidden count can be worked out from everything published together, checked by a linear
program over every sum (the strongest reader); every small count is hidden; the figures carry
exactly the protected marks, and shares and medians only where their counts are shown."""

from __future__ import annotations

import random

import pytest

from services.metrics import disclosure, publication as P
from tests.unit.test_disclosure import T, audit

TEAMS = {"T1": "Gävle", "T2": "Gävle", "T3": "Sandviken"}


def random_atoms(seed: int, cases: int) -> P.Atoms:
    rnd = random.Random(seed)
    atoms = P.Atoms(2026)
    atoms.opening = {t: rnd.choice([0, 0, 1, 3, 7]) for t in TEAMS}
    waiting = [(0, t, rnd.choice([1, 2, 4, None])) for t, n in atoms.opening.items() for _ in range(n)]
    for _, team, left in waiting:
        if left:
            atoms.add(left, team, P.consultation_atom("MAN", True))
    for _ in range(cases):
        month, team = rnd.choice([1, 2, 3, 3, 5]), rnd.choice(list(TEAMS))
        atoms.add(month, team, P.referral_atom(rnd.choice(P.PARTIES), rnd.choice(P.GENDERS),
                                               rnd.choice(P.AGE_BANDS[:3]), rnd.choice(P.INCOMES[:4]),
                                               rnd.random() < 0.5))
        consulted = rnd.random() < 0.7
        left = month + rnd.choice([0, 0, 1, 2])
        waiting.append((month, team, left if consulted else None))
        if consulted:
            atoms.add(left, team, P.consultation_atom(rnd.choice(P.GENDERS[:2]), rnd.random() < 0.6))
            atoms.add(left, team, {f"act.{rnd.choice(P.ACTIONS[:3])}": 1})
            atoms.lead_days.setdefault((left, team), []).append(rnd.randint(5, 60))
        if rnd.random() < 0.3:
            atoms.add(month, team, {"post.consent_missing": 1})
        if rnd.random() < 0.6:
            atoms.add(month, team, P.followup_atom(
                rnd.choice([0, 1, 1]), rnd.random() < 0.8,
                rnd.choice(["FORSORJNINGSSTOD", "SJUKPENNING", "LON"]),
                rnd.choice(["LON", "FORSORJNINGSSTOD", "STUDIEMEDEL"]),
                rnd.choice(["more", "less", "not_answered"]), rnd.choice(P.GENDERS[:2]),
                rnd.choice(P.PARTIES[:2])))
    for month in range(1, 13):  # the queue at each month's end: referred by then, not yet left
        for referred, team, left in waiting:
            if referred <= month and (left is None or left > month):
                atoms.add(month, team, {"queue": 1})
    return atoms


# Fixed years (seed, cases), from 7 to 80 cases, each protected in a second or two: random
# years took from 1 s to minutes (one ran past the test timeout in CI), and this machinery is
# due to be replaced (issue 14). The property checked is unchanged.
YEARS = [(442621, 8), (971512, 7), (894737, 9), (966984, 17), (267459, 20), (709727, 33),
         (519501, 62), (98418, 67), (140891, 77), (412461, 80)]


@pytest.mark.parametrize("seed,cases", YEARS)
def test_no_hidden_count_of_a_years_publication_can_be_worked_out(seed, cases):
    atoms = random_atoms(seed, cases)
    values, marks, scopes_of, linked = P.protected_counts(atoms, TEAMS, T)
    assert any(k[2] == "queue.out" for k in values)  # the queue's flow is told
    rnd = random.Random(seed)
    for keys, component in disclosure._components({k: v for k, v in values.items() if k[2] not in P.UNPROTECTED},
                                                   linked):
        hidden = [k for k in keys if isinstance(marks[k], str) and 0 < values[k] < T]
        sample = set(rnd.sample(hidden, min(len(hidden), 4)))
        # every count of the component is checked; the linear program for a sample of the hidden
        # a reader sees every mark but those of the rests that are never shown
        seen = {k: (disclosure.WITHHELD if k[2].startswith(P.UNSHOWN_PREFIXES) else marks[k]) for k in keys}
        # (a rest never shown may be worked out where it is 5 or more: it was shown to the protection)
        # (the queue as the year began is the year before's, taken as known)
        audited = {k: values[k] for k in keys if k[0] != "opening" and (
                   k in sample or not (isinstance(marks[k], str) or k[2].startswith(P.UNSHOWN_PREFIXES)))}
        audit(audited, component, seen) if sample else None
        for k in keys:
            if k[0] == "opening":
                continue
            assert not (0 < values[k] < T) or marks[k] in (f"<{T}", disclosure.WITHHELD), k
            assert not isinstance(marks[k], int) or marks[k] == values[k], k


def test_the_figures_carry_the_protected_marks_and_shares_only_of_shown_counts():
    atoms = random_atoms(7, 60)
    values, marks, _, _ = P.protected_counts(atoms, TEAMS, T)
    published = P.publish_year(atoms, TEAMS, T).figures
    assert ("2026-01", "team:T1") not in published  # a team's month is not published
    assert {scope for _, scope in published} == {"ALL", "municipality:Gävle", "municipality:Sandviken",
                                                 "team:T1", "team:T2", "team:T3"}
    for (label, scope), f in published.items():
        assert f["referrals_by_party"]["counts"] == {p: marks[(label, scope, f"ref.party.{p}")] for p in P.PARTIES}
        assert f["referrals_by_party"]["total"] == marks[(label, scope, "ref")]
        for share in (f["individual_participation"], f["violence_question_asked"], f["more_ready"]):
            if share["share"] is not None:
                assert isinstance(share["count"], int) and isinstance(share["of"], int)
        for team, lead in f["lead_time_days"]["by_team"].items():
            assert lead["median"] is None or (isinstance(lead["n"], int) and lead["n"] >= T)
        assert f["meetings"]["held"] == values[(label, scope, "meet.held")]  # meetings are not people


def test_a_year_without_facts_publishes_zeros():
    published = P.publish_year(P.Atoms(2025), TEAMS, T).figures
    q = published[("2025Q2", "ALL")]
    assert q["referrals_by_party"]["total"] == 0 and q["followup_response"]["total"] == 0


def test_a_small_queue_carried_into_a_year_is_taken_as_it_was_published():
    # the queue as the year began was published with the year before, a small one as "<5", not
    # as known exactly: that pinned the team's inflow (queue + no referrals), which no hiding
    # near it could undo, and the protection hid count after count (once for minutes: the
    # publisher stalled) before it started again without the marks kept
    atoms = P.Atoms(2028)
    atoms.opening = {"T1": 4, "T2": 9}
    for month in range(1, 13):  # still waiting, all year
        atoms.add(month, "T1", {"queue": 4})
        atoms.add(month, "T2", {"queue": 9})
    values, marks, _, linked = P.protected_counts(atoms, TEAMS, T)
    assert marks[("opening", "team:T1", "queue")] == "<5" and marks[("opening", "team:T2", "queue")] == 9
    assert marks[("2028Q1", "team:T1", "queue")] == "<5" and marks[("2028Q1", "team:T2", "queue")] in (9, "x", "–")
    audit({k: v for k, v in values.items() if not k[2].startswith(P.UNSHOWN_PREFIXES)}, linked,
          {k: (disclosure.WITHHELD if k[2].startswith(P.UNSHOWN_PREFIXES) else m) for k, m in marks.items()})


@pytest.mark.parametrize("seed,cases", [(519501, 62), (98418, 67), (412461, 80)])
def test_a_count_that_has_not_changed_keeps_its_mark_when_published_again(seed, cases):
    # a reader may keep both publications: what was shown stays shown, what was hidden stays hidden
    atoms = random_atoms(seed, cases)
    first = P.publish_year(atoms, TEAMS, T)
    atoms.add(5, "T3", P.referral_atom("FK", "WOMAN", "16-24", "LON", False))  # one more, in May
    again = P.publish_year(atoms, TEAMS, T, previous=first.counts)
    unchanged = [k for k, (value, _) in again.counts.items() if first.counts.get(k, (None,))[0] == value]
    assert len(unchanged) > len(again.counts) / 2
    changed_marks = [k for k in unchanged if again.counts[k][1] != first.counts[k][1]]
    assert changed_marks == []


def test_the_source_digest_changes_exactly_when_what_a_year_is_worked_out_from_changes():
    digest = P.source_digest(random_atoms(7, 30), TEAMS, 5)
    assert P.source_digest(random_atoms(7, 30), TEAMS, 5) == digest  # the same facts
    one_more = random_atoms(7, 30)
    one_more.add(4, "T2", {"post.consent_missing": 1})
    assert P.source_digest(one_more, TEAMS, 5) != digest
    assert P.source_digest(random_atoms(7, 30), TEAMS | {"T3": "Gävle"}, 5) != digest
    assert P.source_digest(random_atoms(7, 30), TEAMS | {"T4": "Gävle"}, 5) != digest
    assert P.source_digest(random_atoms(7, 30), TEAMS, 3) != digest
    empty_cell = random_atoms(7, 30)
    empty_cell.add(11, "T1", {"ref": 0})  # a zero count is no fact
    assert P.source_digest(empty_cell, TEAMS, 5) == digest
    unknown_team = random_atoms(7, 30)
    unknown_team.add(11, "T9", {"meet.held": 0})  # a team known only from its meetings: a scope of its own
    assert P.source_digest(unknown_team, TEAMS, 5) != digest


def test_a_count_that_propagation_misses_is_hidden_by_the_linear_programs():
    """Found by a review: in this small year, propagation alone left a municipality's quarter
    count (2) that a linear program over the sums pins down; the programs per region see it."""
    atoms = random_atoms(25, 31)
    values, marks, _, linked = P.protected_counts(atoms, TEAMS, T)
    key = ("2026Q1", "municipality:Sandviken", "ps.at_follow_up.no")
    assert values[key] == 2
    protected = {k: v for k, v in values.items() if k[2] not in P.UNPROTECTED}
    keys, component = next(c for c in disclosure._components(protected, linked) if key in c[0])
    assert len(keys) > disclosure.LP_LIMIT  # a group too large for one program over all of it
    seen = {k: (disclosure.WITHHELD if k[2].startswith(P.UNSHOWN_PREFIXES) else marks[k]) for k in keys}
    audit({k: values[k] for k in keys if k[0] != "opening" and (
           k == key or not (isinstance(marks[k], str) or k[2].startswith(P.UNSHOWN_PREFIXES)))}, component, seen)

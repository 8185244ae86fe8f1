"""A known set of domain events for 2026Q4 and the exact figures they give (docs/metrics.md).

Teams T-ONE (Gävle) and T-TWO (Sandviken). In 2026Q4: 15 referrals (AF 7, FK 2, KOMMUN 6),
8 consultations, 1 case not consulted, 2 meetings held, 2 cancelled (staff_absent, no_cases),
one cancelled for a holiday (not counted), 2 pre-meetings, postponements; and the six-month
follow-ups, due in 2026Q4, of 6 cases consulted in May.
"""

from __future__ import annotations

from tests.support.broker import envelope

Q4 = "2026Q4"


def _e(event_type: str, /, **payload) -> dict:
    return envelope(event_type, payload, producer="test")


def _referred(ref, party, team, gender, income, at, violence=False) -> dict:
    return _e("CaseReferred", case_ref=ref, team_id=team,
              municipality="Gävle" if team == "T-ONE" else "Sandviken", referring_party=party,
              gender=gender, age_band="25-34", income_source=income, consented_parties=[party],
              wishes_to_attend=None, violence_question_asked=violence, reason_codes=[],
              referred_at=at)


def _consulted(ref, party, team, meeting, held_on, attended, actions) -> dict:
    return _e("ConsultationHeld", case_ref=ref, team_id=team,
              municipality="Gävle" if team == "T-ONE" else "Sandviken", meeting_id=meeting,
              meeting_date=held_on, held_on=held_on, referring_party=party,
              referred_at="2026-10-06T08:00:00+00:00", parties_present=["AF", "FK"],
              others_invited=[], individual_attended=attended,
              actions=[{"type": a, "responsible_party": "KOMMUN", "due_on": "2027-01-15"}
                       for a in actions], recorded_at="2026-11-05T12:00:00+00:00")


def _meeting(kind, meeting_id, team, day, **extra) -> dict:
    municipality = "Gävle" if team == "T-ONE" else "Sandviken"
    if kind == "MeetingScheduled":
        return _e(kind, meeting_id=meeting_id, team_id=team, municipality=municipality,
                  meeting_date=day, starts_at=f"{day}T08:00:00+00:00",
                  cutoff_at=f"{day}T08:00:00+00:00", capacity=5)
    return _e(kind, meeting_id=meeting_id, team_id=team, municipality=municipality,
              meeting_date=day, **extra)


def board_events() -> list[dict]:
    events = [_e("TeamUpdated", team_id="T-ONE", team_name="Team One", municipality="Gävle",
                 host_unit_type="health_centre", host_unit_name="One", cadence_weeks=2, weekday=1,
                 meeting_time="09:00", capacity=5, cutoff_days=5,
                 fixed_parties=["AF", "FK", "KOMMUN", "REGION"], revision=1,
                 updated_at="2026-09-01T08:00:00+00:00"),
              _e("TeamUpdated", team_id="T-TWO", team_name="Team Two", municipality="Sandviken",
                 host_unit_type="psychiatry", host_unit_name="Two", cadence_weeks=3, weekday=3,
                 meeting_time="13:00", capacity=4, cutoff_days=3,
                 fixed_parties=["AF", "FK", "KOMMUN", "REGION"], revision=1,
                 updated_at="2026-09-01T08:00:00+00:00")]
    # referrals in 2026Q4 (and one in Q3, outside)
    for i in range(7):
        events.append(_referred(f"AF{i}", "AF", "T-ONE", "WOMAN" if i < 4 else "MAN", "SJUKPENNING",
                                "2026-10-06T08:00:00+00:00", violence=True))
    for i in range(2):
        events.append(_referred(f"FK{i}", "FK", "T-ONE", "WOMAN", "A_KASSA", "2026-10-07T08:00:00+00:00"))
    for i in range(6):
        events.append(_referred(f"KO{i}", "KOMMUN", "T-TWO", "WOMAN" if i < 3 else "MAN",
                                "FORSORJNINGSSTOD", "2026-10-08T08:00:00+00:00"))
    events.append(_referred("OLDQ3", "AF", "T-ONE", "MAN", "LON", "2026-09-20T08:00:00+00:00"))
    # meetings
    events += [_meeting("MeetingScheduled", "T-ONE-20261103", "T-ONE", "2026-11-03"),
               _meeting("MeetingScheduled", "T-TWO-20261105", "T-TWO", "2026-11-05"),
               _meeting("MeetingScheduled", "T-ONE-20261117", "T-ONE", "2026-11-17"),
               _meeting("MeetingCancelled", "T-ONE-20261117", "T-ONE", "2026-11-17",
                        reason="staff_absent", cases_moved=1, cancelled_at="2026-11-10T08:00:00+00:00"),
               _meeting("MeetingCancelled", "T-TWO-20261126", "T-TWO", "2026-11-26",
                        reason="no_cases", cases_moved=0, cancelled_at="2026-11-23T08:00:00+00:00"),
               _meeting("MeetingCancelled", "T-ONE-20261201", "T-ONE", "2026-12-01",
                        reason="holiday", cases_moved=0, cancelled_at="2026-11-23T08:00:00+00:00"),
               _meeting("PreMeetingHeld", "T-ONE-20261103", "T-ONE", "2026-11-03",
                        held_on="2026-10-30", recorded_at="2026-10-30T12:00:00+00:00"),
               _meeting("PreMeetingHeld", "T-TWO-20261105", "T-TWO", "2026-11-05",
                        held_on="2026-11-02", recorded_at="2026-11-02T12:00:00+00:00")]
    for ref, reason in (("FK0", "consent_missing"), ("FK1", "consent_missing"),
                        ("AF6", "meeting_cancelled"), ("AF5", "displaced")):
        events.append(_e("CasePostponed", case_ref=ref, team_id="T-ONE",
                         from_meeting_id="T-ONE-20261103" if reason != "meeting_cancelled" else "T-ONE-20261117",
                         from_meeting_date="2026-11-03" if reason != "meeting_cancelled" else "2026-11-17",
                         to_meeting_id=None, to_meeting_date=None, reason=reason,
                         missing_parties=["FK"] if reason == "consent_missing" else [],
                         postponed_at="2026-10-29T08:00:00+00:00"))
    # consultations: 5 AF (T-ONE, 3 Nov), 3 KOMMUN (T-TWO, 5 Nov); 4 of 8 attended
    for i in range(5):
        events.append(_consulted(f"AF{i}", "AF", "T-ONE", "T-ONE-20261103", "2026-11-03", i < 2,
                                 ["sip", "joint_mapping"]))
    for i in range(3):
        events.append(_consulted(f"KO{i}", "KOMMUN", "T-TWO", "T-TWO-20261105", "2026-11-05", i < 2,
                                 ["return_to_work_plan"]))
    events.append(_e("CaseNotConsulted", case_ref="FK0", team_id="T-ONE", municipality="Gävle",
                     meeting_id="T-ONE-20261103", meeting_date="2026-11-03", referring_party="FK",
                     reason="handled_elsewhere", recorded_at="2026-11-03T12:00:00+00:00"))
    # six months after May consultations: 6 cases on income support at referral
    for i in range(6):
        ref = f"MAY{i}"
        events.append(_referred(ref, "KOMMUN", "T-TWO", "WOMAN" if i % 2 else "MAN",
                                "FORSORJNINGSSTOD", "2026-04-10T08:00:00+00:00"))
        events.append(_consulted(ref, "KOMMUN", "T-TWO", "T-TWO-20260505", "2026-05-05", True, ["sip"]))
        events.append(_e("FollowUpScheduled", followup_id=f"{ref}.six_months", case_ref=ref,
                         team_id="T-TWO", municipality="Sandviken", kind="six_months",
                         referring_party="KOMMUN", responsible_party="KOMMUN",
                         consultation_held_on="2026-05-05", due_on="2026-11-05",
                         scheduled_at="2026-05-05T12:00:00+00:00"))
    outcomes = [("MAY0", True, "LON", "much_more"), ("MAY1", True, "A_KASSA", "unchanged"),
                ("MAY2", True, "STUDIEMEDEL", "unchanged"),
                ("MAY3", True, "FORSORJNINGSSTOD", "not_answered"), ("MAY4", False, None, None)]
    for ref, reached, income, readiness in outcomes:
        events.append(_completed(ref, 1, reached, income, readiness))
    events.append(_completed("MAY1", 2, True, "LON", "more"))  # a correction: it counts
    events.append(_completed("MAY2", 2, True, "STUDIEMEDEL", "unchanged"))
    events.append(_completed("MAY2", 1, True, "FORSORJNINGSSTOD", "less"))  # the older one, late
    events.append(_e("FollowUpCancelled", followup_id="MAY5.plan_check", case_ref="MAY5",
                     kind="plan_check", reason="MOVED", cancelled_at="2026-06-01T08:00:00+00:00"))
    events.append(_e("FollowUpCancelled", followup_id="MAY5.six_months", case_ref="MAY5",
                     kind="six_months", reason="MOVED", cancelled_at="2026-11-01T08:00:00+00:00"))
    events.append(_e("CaseClosed", case_ref="MAY4", reason="MOVED", closed_at="2026-11-20T08:00:00+00:00"))
    return events


def _completed(ref, revision, reached, income, readiness) -> dict:
    return _e("FollowUpCompleted", followup_id=f"{ref}.six_months", case_ref=ref, team_id="T-TWO",
              municipality="Sandviken", kind="six_months", referring_party="KOMMUN",
              responsible_party="KOMMUN", consultation_held_on="2026-05-05", due_on="2026-11-05",
              recorded_on="2026-11-06", reached=reached, income_source=income, readiness=readiness,
              plan_status=None, revision=revision,
              recorded_by="KOMMUN", recorded_at="2026-11-06T12:00:00+00:00")

"""The catalogue of figures: each figure of the board's report declared once.

A figure has a key, a Swedish and an English name, its definition, what it counts (a measure of
the cells in ``domain``), which date decides its period, its unit, the dimensions it is broken
down by, and for a share the figure that is its whole. The exact figures (``figures``), the
public editions (``public``), the report, CSV, the dashboard and the table in docs/metrics.md
(``python -m services.metrics docs``; a test keeps it fresh) all come from here. Adding a
figure is one declaration here (and a measure in ``domain.case_cells`` if it counts something
new) plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.vocabulary import ActionType, AgeBand, Gender, IncomeSource, Party

from . import domain

# Dimensions every case cell has (meetings have only the first two).
GEOGRAPHY = ("team", "municipality")
CASE_DIMENSIONS = ("referring_party", "gender", "age_band", "income_at_referral")
DIMENSIONS = GEOGRAPHY + CASE_DIMENSIONS
# The cell column of each dimension (store.CELL_COLUMNS) and of the detail.
COLUMN = {
    "team": "team_id",
    "municipality": "municipality",
    "referring_party": "referring_party",
    "gender": "gender",
    "age_band": "age_band",
    "income_at_referral": "income",
}

# The values of each breakdown, in the order they are shown (team and municipality: as known).
VALUES: dict[str, tuple[str, ...]] = {
    "referring_party": tuple(p.value for p in Party),
    "gender": tuple(g.value for g in Gender),
    "age_band": tuple(a.value for a in AgeBand),
    "income_at_referral": tuple(i.value for i in IncomeSource) + (domain.UNKNOWN,),
    "action_type": tuple(a.value for a in ActionType),
    "cancellation_reason": tuple(sorted(domain.COUNTED_CANCELLATIONS)),
    "postponement_reason": tuple(sorted(domain.COUNTED_POSTPONEMENTS)),
    "income_at_follow_up": tuple(i.value for i in IncomeSource),
}


@dataclass(frozen=True)
class Figure:
    key: str
    sv: str
    en: str
    definition: str  # in English; the docs' table
    measure: str  # the cells it counts (an outcome measure without its basis)
    basis: str  # which date decides the period (BASES)
    kind: str = "count"  # count | share | median | stock
    unit: str = "cases"
    by: tuple[str, ...] = ()  # breakdowns of the exact figures
    detail: str | None = None  # what the cells' detail is, if the figure is broken down by it
    base: str | None = None  # a share: the figure that is its whole
    public_by: tuple[str, ...] | None = ()  # breakdowns in the public edition; None: not public
    people: bool = True  # counts people (protected in the public edition); meetings are not

    @property
    def public(self) -> bool:
        return self.public_by is not None

    @property
    def outcome(self) -> bool:
        return self.basis == "outcome"

    def cell_measure(self, outcome_basis: str) -> str:
        return f"{self.measure}@{outcome_basis}" if self.outcome else self.measure

    @property
    def case_figure(self) -> bool:
        """Broken down or filtered by the case's dimensions (meetings are not)."""
        return self.unit != "meetings"


BASES = {
    "referral": ("the day the referral was accepted (Swedish date)", "remissdagen"),
    "consultation": ("the day of the consultation", "konsultationsdagen"),
    "meeting": ("the meeting's date", "mötesdagen"),
    "pre_meeting": ("the pre-meeting's date", "förmötesdagen"),
    "postponement": ("the date of the meeting the case was moved from", "mötet ärendet flyttades från"),
    "end": ("the last day of the period", "periodens sista dag"),
    "outcome": (
        "by referral cohort (the day the case was referred: the default) or by the follow-up's due date",
        "remisskohort eller uppföljningens förfallodag",
    ),
}
OUTCOME_BY = ("gender", "referring_party", "team", "municipality")

FIGURES: tuple[Figure, ...] = (
    Figure(
        "cases_referred",
        "Nya remitterade ärenden",
        "New cases referred",
        "cases referred (accepted by the referral service)",
        "referred",
        "referral",
        by=DIMENSIONS,
        public_by=CASE_DIMENSIONS,
    ),
    Figure(
        "cases_consulted",
        "Nya konsulterade ärenden",
        "New cases consulted",
        "cases consulted at a Trisam meeting (`ConsultationHeld`)",
        "consulted",
        "consultation",
        by=DIMENSIONS,
        public_by=("referring_party", "gender"),
    ),
    Figure(
        "violence_question_asked",
        "Tillfrågade om våld i nära relation",
        "Asked about violence in close relationships",
        "cases referred where the individual was asked about violence in close relationships",
        "violence_asked",
        "referral",
        kind="share",
        base="cases_referred",
        by=("referring_party", "gender", "team", "municipality"),
        public_by=(),
    ),
    Figure(
        "individual_attended",
        "Individen deltog",
        "The individual attended",
        "cases consulted where the individual attended the meeting",
        "attended",
        "consultation",
        kind="share",
        base="cases_consulted",
        by=("referring_party", "gender", "team", "municipality"),
        public_by=(),
    ),
    Figure(
        "lead_time_days",
        "Ledtid remiss–konsultation (median, dagar)",
        "Lead time referral to consultation (median, days)",
        "median days from referral to consultation of the cases consulted",
        "lead",
        "consultation",
        kind="median",
        unit="days",
        by=("team", "municipality", "referring_party"),
        public_by=(),
    ),
    Figure(
        "queue_at_end",
        "Kö vid periodens slut",
        "Queue at the end of the period",
        "cases referred by the end of the period and then neither consulted, nor marked not consulted, nor closed",
        "queue",
        "end",
        kind="stock",
        by=("team", "municipality", "referring_party"),
        public_by=None,
    ),  # not public: with referrals and consultations it would give away who left otherwise
    Figure(
        "activities",
        "Aktiviteter efter konsultation",
        "Activities after consultation",
        "actions in the plans of the cases consulted, per type (multi-party meeting, joint "
        "mapping, SIP, return-to-work plan, …)",
        "action",
        "consultation",
        unit="actions",
        by=("team", "municipality"),
        detail="action_type",
        public_by=(),
    ),
    Figure(
        "postponements",
        "Uppskjutna ärenden",
        "Postponed cases",
        "cases moved to a later meeting, per reason (consent missing, consent withdrawn, meeting "
        "cancelled; giving way to earlier cases is not a postponement)",
        "postponed",
        "postponement",
        by=("team", "municipality", "referring_party"),
        detail="postponement_reason",
        public_by=(),
    ),
    Figure(
        "meetings_held",
        "Genomförda möten",
        "Meetings held",
        "meetings not cancelled at which at least one case was consulted or marked not consulted",
        "meeting_held",
        "meeting",
        unit="meetings",
        by=("team", "municipality"),
        public_by=(),
        people=False,
    ),
    Figure(
        "meetings_cancelled",
        "Inställda möten",
        "Meetings cancelled",
        "meetings cancelled, per reason (no cases, staff absent, other; a holiday or a changed "
        "calendar is not counted: the meeting was never due)",
        "meeting_cancelled",
        "meeting",
        unit="meetings",
        by=("team", "municipality"),
        detail="cancellation_reason",
        public_by=(),
        people=False,
    ),
    Figure(
        "pre_meetings_held",
        "Förmöten",
        "Pre-meetings held",
        "pre-meetings recorded",
        "pre_meeting",
        "pre_meeting",
        unit="meetings",
        by=("team", "municipality"),
        public_by=(),
        people=False,
    ),
    Figure(
        "followups_due",
        "Sexmånadersuppföljningar",
        "Six-month follow-ups due",
        "six-month follow-ups due (a follow-up cancelled because the case closed is not due)",
        "outcome.due",
        "outcome",
        unit="follow-ups",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "followups_recorded",
        "Registrerade uppföljningar",
        "Follow-ups recorded",
        "six-month follow-ups with a record (reached or not)",
        "outcome.recorded",
        "outcome",
        kind="share",
        base="followups_due",
        unit="follow-ups",
        by=OUTCOME_BY,
        public_by=None,
    ),
    Figure(
        "followups_reached",
        "Nådda vid uppföljningen (svarsfrekvens)",
        "Reached at the follow-up (response rate)",
        "six-month follow-ups where the individual was reached",
        "outcome.reached",
        "outcome",
        kind="share",
        base="followups_due",
        unit="follow-ups",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "public_support_at_referral",
        "Offentlig försörjning vid remiss",
        "On public support at referral",
        "of those reached: living mainly on income support, sickness benefit, unemployment "
        "insurance or activity support at referral",
        "outcome.ps_referral",
        "outcome",
        kind="share",
        base="followups_reached",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "public_support_at_follow_up",
        "Offentlig försörjning efter sex månader",
        "On public support after six months",
        "of those reached: living mainly on one of the same at the follow-up",
        "outcome.ps_follow_up",
        "outcome",
        kind="share",
        base="followups_reached",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "on_income_support_at_referral",
        "Försörjningsstöd vid remiss",
        "On income support at referral",
        "of those reached: living mainly on income support (försörjningsstöd) at referral",
        "outcome.fs_referral",
        "outcome",
        kind="share",
        base="followups_reached",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "self_sufficient",
        "Egen försörjning",
        "Self-sufficient",
        "of those reached who lived on income support at referral: living at the follow-up on "
        "wage, student aid, activity compensation, activity support, sickness compensation, "
        "pension or an unknown source (as the municipalities report it)",
        "outcome.self_sufficient",
        "outcome",
        kind="share",
        base="on_income_support_at_referral",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "income_after_income_support",
        "Försörjning efter försörjningsstöd",
        "Income after income support",
        "of those reached who lived on income support at referral: their main income at the "
        "follow-up, per type (unknown: the source was not known)",
        "outcome.destination",
        "outcome",
        kind="share",
        base="on_income_support_at_referral",
        detail="income_at_follow_up",
        by=(),
        public_by=None,
    ),  # not public: a few people spread over eleven incomes
    Figure(
        "readiness_answered",
        "Svarat om redo för arbete/studier",
        "Answered about readiness for work or studies",
        "of those reached: answered whether they feel more ready to work or study",
        "outcome.answered",
        "outcome",
        kind="share",
        base="followups_reached",
        by=OUTCOME_BY,
        public_by=(),
    ),
    Figure(
        "more_ready",
        "Mer redo för arbete eller studier",
        "More ready to work or study",
        "of those who answered: feel more (or much more) ready to work or study",
        "outcome.more_ready",
        "outcome",
        kind="share",
        base="readiness_answered",
        by=OUTCOME_BY,
        public_by=(),
    ),
)
BY_KEY = {f.key: f for f in FIGURES}
# Raised when what a figure counts changes: public editions are then made again at start.
DEFINITIONS_VERSION = 1

DIMENSION_NAMES = {
    "team": ("Team", "Team"),
    "municipality": ("Kommun", "Municipality"),
    "referring_party": ("Remitterande part", "Referring party"),
    "gender": ("Kön", "Gender"),
    "age_band": ("Åldersgrupp", "Age band"),
    "income_at_referral": ("Försörjning vid remiss", "Income at referral"),
    "action_type": ("Aktivitet", "Activity"),
    "cancellation_reason": ("Orsak", "Reason"),
    "postponement_reason": ("Orsak", "Reason"),
    "income_at_follow_up": ("Försörjning", "Income"),
}

# Every code the figures show, in words (sv, en): labels are never raw codes.
CODE_LABELS: dict[str, tuple[str, str]] = {
    "AF": ("Arbetsförmedlingen", "Public Employment Service"),
    "FK": ("Försäkringskassan", "Social Insurance Agency"),
    "KOMMUN": ("Kommunen (socialtjänsten)", "Municipality (social services)"),
    "REGION": ("Regionen (hälso- och sjukvården)", "Region (health care)"),
    "MAN": ("Män", "Men"),
    "WOMAN": ("Kvinnor", "Women"),
    "UNKNOWN": ("Okänt", "Unknown"),
    "16-24": ("16–24 år", "16–24 years"),
    "25-34": ("25–34 år", "25–34 years"),
    "35-44": ("35–44 år", "35–44 years"),
    "45-54": ("45–54 år", "45–54 years"),
    "55-65": ("55–65 år", "55–65 years"),
    "LON": ("Lön", "Wage"),
    "SJUKPENNING": ("Sjukpenning", "Sickness benefit"),
    "SJUKERSATTNING": ("Sjukersättning", "Sickness compensation"),
    "AKTIVITETSERSATTNING": ("Aktivitetsersättning", "Activity compensation"),
    "AKTIVITETSSTOD": ("Aktivitetsstöd", "Activity support"),
    "A_KASSA": ("A-kassa", "Unemployment insurance"),
    "FORSORJNINGSSTOD": ("Försörjningsstöd", "Income support"),
    "STUDIEMEDEL": ("Studiemedel", "Student aid"),
    "PENSION": ("Pension", "Pension"),
    "INGEN": ("Ingen inkomst", "No income"),
    "OKAND": ("Okänd", "Unknown"),
    "multi_party_meeting": ("Avstämningsmöte", "Multi-party meeting"),
    "joint_mapping": ("Gemensam kartläggning (GK)", "Joint mapping"),
    "sip": ("Samordnad individuell plan (SIP)", "Coordinated individual plan (SIP)"),
    "return_to_work_plan": ("Plan för återgång i arbete", "Return-to-work plan"),
    "work_ability_assessment": ("Arbetsförmågebedömning", "Work ability assessment"),
    "work_training": ("Arbetsträning", "Work training"),
    "medical_certificate": ("Läkarintyg", "Medical certificate"),
    "other": ("Annat", "Other"),
    "no_cases": ("Inga ärenden", "No cases"),
    "staff_absent": ("Fast medlem frånvarande", "Staff absent"),
    "consent_missing": ("Samtycke saknas", "Consent missing"),
    "consent_withdrawn": ("Samtycke återkallat", "Consent withdrawn"),
    "meeting_cancelled": ("Mötet ställdes in", "Meeting cancelled"),
    "county": ("Hela länet", "The whole county"),
}


def label(code: str, lang: str) -> str:
    """A code in words; a team id or municipality name as it is."""
    pair = CODE_LABELS.get(code)
    return code if pair is None else pair[0 if lang == "sv" else 1]


def name(figure: Figure, lang: str) -> str:
    return figure.sv if lang == "sv" else figure.en


def measures(outcome_basis: str) -> list[str]:
    """The cell measures the figures read (outcomes on one basis)."""
    return sorted({f.cell_measure(outcome_basis) for f in FIGURES})


def docs_table() -> str:
    """The figure table of docs/metrics.md, generated (a test checks it is fresh)."""
    rows = [
        "| key | figure (sv / en) | what is counted | share of | which date decides | broken down by | public |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FIGURES:
        share_of = f"`{f.base}`" if f.base else "–"
        by = ", ".join(f.by + ((f.detail,) if f.detail else ())) or "–"
        public = (
            "no"
            if not f.public
            else (
                "yes, not suppressed"
                if not f.people
                else "yes" + (f" (by {', '.join(f.public_by)})" if f.public_by else "")
            )
        )
        unit = {"median": " (median)", "stock": " (at the period's end)"}.get(f.kind, "")
        rows.append(
            f"| `{f.key}` | {f.sv} / {f.en} | {f.definition}{unit} | {share_of} | "
            f"{BASES[f.basis][0]} | {by} | {public} |"
        )
    return "\n".join(rows) + "\n"

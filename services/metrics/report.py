"""The quarterly report in the structure of the board's report, as HTML (printable) or CSV, in
Swedish or English, of exact figures (signed-in readers) or of a public edition. Names and
codes come from the catalogue, in words; the page says which audience it is for."""

from __future__ import annotations

import csv
import html
import io

from . import catalogue
from .catalogue import BY_KEY, Figure, label, name
from .public import SHARE_BASE_MIN

SECTIONS = (
    (("1. Ärenden", "1. Cases"), ("cases_referred", "violence_question_asked")),
    (
        ("2. Konsultationer", "2. Consultations"),
        ("cases_consulted", "individual_attended", "activities", "lead_time_days", "queue_at_end"),
    ),
    (("3. Möten", "3. Meetings"), ("meetings_held", "meetings_cancelled", "pre_meetings_held", "postponements")),
    (
        ("4. Uppföljning efter sex månader", "4. Six-month follow-up"),
        (
            "followups_due",
            "followups_reached",
            "public_support_at_referral",
            "public_support_at_follow_up",
            "on_income_support_at_referral",
            "self_sufficient",
            "income_after_income_support",
            "readiness_answered",
            "more_ready",
        ),
    ),
)
GOAL_SHARE = 1 / len(catalogue.VALUES["referring_party"])  # the board's goal: an even spread

TEXTS = {
    "sv": {
        "title": "Trisam – kvartalsrapport till styrelsen",
        "period": "Period",
        "scope": "Omfattning",
        "county": "Hela länet",
        "municipality": "Kommun",
        "team": "Team",
        "count": "Antal",
        "share": "Andel",
        "goal": "Mål",
        "total": "Totalt",
        "of": "av",
        "median": "Median",
        "n": "Antal ärenden",
        "not_applicable": "Gäller inte med valda filter.",
        "filters": "Filter",
        "days": "dagar",
        "exact": "Exakta siffror för inloggade läsare inom deras behörighet. Varje läsning loggas. "
        "Får inte lämnas ut utanför systemet.",
        "public": 'Offentlig utgåva {edition} ({made}): antal 1–4 visas som "<{t}"; "x" döljer ett antal '
        "så att ett litet antal inte kan räknas fram; andelar visas bara över minst 10. Utgåvan "
        "ändras inte; en rättelse blir en ny utgåva.",
        "outcomes_cohort": "Utfall efter sex månader för de ärenden som remitterades under perioden (kohort).",
        "outcomes_due": "Utfall efter sex månader för de uppföljningar som förföll under perioden.",
    },
    "en": {
        "title": "Trisam – quarterly report to the board",
        "period": "Period",
        "scope": "Scope",
        "county": "The whole county",
        "municipality": "Municipality",
        "team": "Team",
        "count": "Count",
        "share": "Share",
        "goal": "Goal",
        "total": "Total",
        "of": "of",
        "median": "Median",
        "n": "Cases",
        "not_applicable": "Does not apply with the filters chosen.",
        "filters": "Filters",
        "days": "days",
        "exact": "Exact figures for signed-in readers within their scope. Every read is logged. "
        "Not to be passed on outside the system.",
        "public": 'Public edition {edition} ({made}): counts of 1–4 show as "<{t}"; "x" hides a count so '
        "that a small count cannot be worked out; shares only over at least 10. The edition does "
        "not change; a correction is a new edition.",
        "outcomes_cohort": "Six-month outcomes of the cases referred in the period (the cohort).",
        "outcomes_due": "Six-month outcomes of the follow-ups due in the period.",
    },
}


def _pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _cell(value) -> str:
    return "–" if value is None else str(value)


def _table(head: list[str], rows: list[list], figure: str) -> str:
    cells = "".join(f"<th scope=col>{html.escape(h)}</th>" for h in head)
    body = []
    for row in rows:
        first, *rest = row
        key = row[0][1] if isinstance(first, tuple) else first
        shown = first[0] if isinstance(first, tuple) else first
        body.append(
            f"<tr><th scope=row>{html.escape(str(shown))}</th>"
            + "".join(
                f'<td data-figure="{html.escape(figure)}:{html.escape(str(key))}:{i}">{html.escape(_cell(c))}</td>'
                for i, c in enumerate(rest, start=1)
            )
            + "</tr>"
        )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(f: Figure, answer: dict, t: dict, lang: str, public: bool) -> str:
    parts = [f'<h3 id="{f.key}">{html.escape(name(f, lang))}</h3>']
    if answer.get("applies") is False:
        return "".join(parts) + f"<p>{t['not_applicable']}</p>"
    if f.kind == "median":
        unit = t["days"]
        parts.append(
            f'<p data-figure="{f.key}">{t["median"]}: <strong>{_cell(answer["median"])}</strong> {unit} '
            f"({t['n']}: {_cell(answer['n'])})</p>"
        )
        for dimension, lines in answer.get("by", {}).items():
            parts.append(
                _table(
                    [catalogue.DIMENSION_NAMES[dimension][lang == "en"], t["median"], t["n"]],
                    [[(label(k, lang), k), v["median"], v["n"]] for k, v in lines.items()],
                    f"{f.key}.{dimension}",
                )
            )
        return "".join(parts)
    value = answer["value"]
    if f.kind == "share":
        parts.append(
            f'<p data-figure="{f.key}"><strong>{_cell(value)}</strong> {t["of"]} {_cell(answer["of"])} '
            f"({_pct(answer.get('share'))})</p>"
        )
    else:
        parts.append(f'<p data-figure="{f.key}">{t["total"]}: <strong>{_cell(value)}</strong></p>')
    whole = answer.get("of") if f.kind == "share" else value
    for dimension, lines in answer.get("by", {}).items():
        shares = f.kind == "share" and any(isinstance(v, dict) for v in lines.values())
        head = (
            [catalogue.DIMENSION_NAMES[dimension][lang == "en"], t["count"]]
            + ([t["of"]] if shares else [])
            + [t["share"]]
        )
        rows = []
        for k, v in lines.items():
            count, of = (v.get("value"), v.get("of")) if isinstance(v, dict) else (v, whole)
            share = v.get("share") if isinstance(v, dict) else _share(count, of, public)
            rows.append([(label(k, lang), k), count] + ([of] if shares else []) + [_pct(share)])
        if dimension == "referring_party":
            head.append(t["goal"])
            rows = [row + [_pct(GOAL_SHARE)] for row in rows]
        parts.append(_table(head, rows, f"{f.key}.{dimension}"))
    return "".join(parts)


def _share(count, of, public: bool) -> float | None:
    """A share of two shown counts (in a public edition only over at least 10)."""
    if not (isinstance(count, int) and isinstance(of, int) and of > 0) or (public and of < SHARE_BASE_MIN):
        return None
    return round(count / of, 4)


def _scope(result: dict, t: dict) -> str:
    if result.get("team_id"):
        return f"{t['team']} {result['team_id']}"
    if result.get("municipality"):
        return f"{t['municipality']} {result['municipality']}"
    return t["county"]


def render_html(result: dict, lang: str = "sv") -> str:
    t = TEXTS[lang]
    audience = result["audience"]
    notice = (
        t["exact"]
        if audience == "exact"
        else t["public"].format(
            edition=result["edition"], made=str(result["made_at"])[:10], t=result["suppression_threshold"]
        )
    )
    filters = result.get("filters") or {}
    parts = [
        f"<h1>{t['title']}</h1>",
        f"<p class=period>{t['period']}: <strong data-figure=period>{html.escape(str(result['period']))}</strong>"
        f" ({result['from']} – {result['to']}). {t['scope']}: <strong data-figure=scope>"
        f"{html.escape(_scope(result, t))}</strong></p>",
        f'<p class="audience {audience}" data-audience={audience} role=note>{html.escape(notice)}</p>',
    ]
    if filters:
        parts.append(
            f"<p>{t['filters']}: "
            + ", ".join(
                f"{catalogue.DIMENSION_NAMES[d][lang == 'en']}: {html.escape(label(v, lang))}"
                for d, v in filters.items()
            )
            + "</p>"
        )
    for (title_sv, title_en), keys in SECTIONS:
        parts.append(f"<h2>{title_sv if lang == 'sv' else title_en}</h2>")
        if keys[0] == "followups_due":
            parts.append(f"<p>{t['outcomes_' + result.get('outcome_basis', 'cohort')]}</p>")
        for key in keys:
            if key in result["figures"]:
                parts.append(_figure(BY_KEY[key], result["figures"][key], t, lang, audience == "public"))
    style = (
        "body{font-family:sans-serif;max-width:62em;margin:2em auto;color:#111;line-height:1.4}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #767676;padding:.2em .6em;"
        "text-align:right}thead th:first-child,tbody th{text-align:left}"
        ".audience{border-left:.4em solid #0b5394;padding:.3em .8em;background:#eef3f9}"
        ".audience.public{border-color:#38761d;background:#eef6ea}"
        "@media print{h2{page-break-before:auto}}"
    )
    return (
        f"<!doctype html><html lang={lang}><head><meta charset=utf-8>"
        f'<meta name=viewport content="width=device-width, initial-scale=1"><title>{t["title"]}</title>'
        f"<style>{style}</style></head><body><main>{''.join(parts)}</main></body></html>"
    )


def render_csv(result: dict, lang: str = "sv") -> str:
    """One row per figure, breakdown and value, with names in words."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "name", "dimension", "key", "key_name", "value", "of", "share", "median", "n"])
    for meta in ("audience", "period", "from", "to", "scope", "edition", "outcome_basis"):
        if meta in result:
            writer.writerow([f"#{meta}", result[meta], "", "", "", "", "", "", "", ""])
    for key, answer in result["figures"].items():
        f = BY_KEY[key]
        lines = [("", "", answer)] + [(d, k, v) for d, ls in answer.get("by", {}).items() for k, v in ls.items()]
        for dimension, k, v in lines:
            v = v if isinstance(v, dict) else {"value": v}
            writer.writerow(
                [
                    key,
                    name(f, lang),
                    dimension,
                    k,
                    label(k, lang) if k else "",
                    _blank(v.get("value")),
                    _blank(v.get("of")),
                    _blank(v.get("share")),
                    _blank(v.get("median")),
                    _blank(v.get("n")),
                ]
            )
    return out.getvalue()


def _blank(value) -> str:
    return "" if value is None else str(value)

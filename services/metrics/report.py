"""The quarterly report in the structure of the board's report, as HTML (printable), CSV or
JSON, in Swedish or English, from published (suppressed) figures only."""

from __future__ import annotations

import csv
import html
import io
import json

TEXTS = {
    "sv": {
        "title": "Trisam – kvartalsrapport till styrelsen", "period": "Period",
        "cases": "1. Ärenden", "meetings": "2. Möten", "consultations": "3. Konsultationer",
        "outcomes": "4. Uppföljning efter sex månader",
        "referrals_by_party": "Remisser per remitterande part (mål: jämn fördelning)",
        "referrals_by_gender": "Remisser per kön", "referrals_by_age_band": "Remisser per åldersgrupp",
        "income_at_referral": "Huvudsaklig försörjning vid remiss",
        "violence_question_asked": "Tillfrågade om våld i nära relation",
        "cases_consulted_by_gender": "Nya konsulterade ärenden per kön",
        "individual_participation": "Individen deltog", "activities": "Aktiviteter efter konsultation",
        "lead_time_days": "Ledtid remiss–konsultation (median, dagar)",
        "queue_by_team": "Kö per team vid periodens slut", "meetings_held": "Genomförda möten",
        "cancelled_by_reason": "Inställda möten per orsak", "pre_meetings_held": "Förmöten",
        "postponements_by_reason": "Uppskjutna ärenden per orsak",
        "followup_response": "Svarsfrekvens sexmånadersuppföljning",
        "public_support": "Andel med offentlig försörjning (försörjningsstöd, sjukpenning, a-kassa, aktivitetsstöd)",
        "at_referral": "vid remiss", "at_follow_up": "efter sex månader",
        "self_sufficiency": "Egen försörjning (av dem med försörjningsstöd vid remiss), per typ",
        "more_ready": "Känner sig mer redo för arbete eller studier",
        "by_gender_and_party": "Utfall efter sex månader per kön och remitterande part",
        "public_support_short": "Offentlig försörjning", "self_sufficient": "Egen försörjning",
        "count": "Antal", "share": "Andel", "goal": "Mål", "total": "Totalt", "of": "av",
        "note": "Antal under {t} visas som \"<{t}\"; \"x\" döljer ett antal så att ett litet antal inte kan räknas fram.",
    },
    "en": {
        "title": "Trisam – quarterly report to the board", "period": "Period",
        "cases": "1. Cases", "meetings": "2. Meetings", "consultations": "3. Consultations",
        "outcomes": "4. Six-month follow-up",
        "referrals_by_party": "Referrals per referring party (goal: an even spread)",
        "referrals_by_gender": "Referrals by gender", "referrals_by_age_band": "Referrals by age band",
        "income_at_referral": "Main income source at referral",
        "violence_question_asked": "Asked about violence in close relationships",
        "cases_consulted_by_gender": "New cases consulted by gender",
        "individual_participation": "The individual attended", "activities": "Activities after consultation",
        "lead_time_days": "Lead time referral to consultation (median, days)",
        "queue_by_team": "Queue per team at the end of the period", "meetings_held": "Meetings held",
        "cancelled_by_reason": "Meetings cancelled by reason", "pre_meetings_held": "Pre-meetings",
        "postponements_by_reason": "Postponed cases by reason",
        "followup_response": "Six-month follow-up response",
        "public_support": "Share on public support (income support, sickness benefit, unemployment insurance, activity support)",
        "at_referral": "at referral", "at_follow_up": "after six months",
        "self_sufficiency": "Self-sufficiency (of those on income support at referral), by type",
        "more_ready": "Feel more ready to work or study",
        "by_gender_and_party": "Six-month outcomes by gender and by referring party",
        "public_support_short": "Public support", "self_sufficient": "Self-sufficient",
        "count": "Count", "share": "Share", "goal": "Goal", "total": "Total", "of": "of",
        "note": "Counts under {t} show as \"<{t}\"; \"x\" hides a count so that a small count cannot be worked out.",
    },
}


def _pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _table(rows: list[tuple], head: tuple) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _breakdown(table: dict, t: dict, goal: dict | None = None) -> str:
    head = (t["count"], t["share"]) + ((t["goal"],) if goal else ())
    rows = [(k, v, _pct(table["shares"].get(k))) + ((_pct(goal[k]),) if goal else ())
            for k, v in table["counts"].items()]
    rows.append((t["total"], table["total"], ""))
    return _table([r[:len(head) + 1] for r in rows], ("",) + head)


def _share(item: dict, t: dict) -> str:
    return f"{item['count']} {t['of']} {item['of']} ({_pct(item['share'])})"


def _outcome_groups(f: dict, t: dict) -> str:
    rows = []
    for dim in ("gender", "referring_party"):
        for key in f["self_sufficiency"][f"by_{dim}"]:
            rows.append((f"{dim}: {key}",
                         _share(f["public_support"][f"by_{dim}"]["at_referral"][key], t),
                         _share(f["public_support"][f"by_{dim}"]["at_follow_up"][key], t),
                         _share(f["self_sufficiency"][f"by_{dim}"][key], t),
                         _share(f["more_ready_by"][dim][key], t)))
    return _table(rows, ("", f"{t['public_support_short']} {t['at_referral']}",
                         f"{t['public_support_short']} {t['at_follow_up']}", t["self_sufficient"],
                         t["more_ready"]))


def render_html(report: dict, lang: str = "sv") -> str:
    t = TEXTS[lang]
    f = report["figures"]
    threshold = report["suppression_threshold"]
    parts = [f"<h1>{t['title']}</h1>",
             f"<p class=period>{t['period']}: <strong data-figure=period>{html.escape(report['filter']['period'])}</strong>"
             f" ({report['filter']['from']} – {report['filter']['to']})</p>",
             f"<h2>{t['cases']}</h2>",
             f"<h3>{t['referrals_by_party']}</h3>",
             _breakdown(f["referrals_by_party"], t, f["referrals_by_party"]["goal_share"]),
             f"<h3>{t['referrals_by_gender']}</h3>", _breakdown(f["referrals_by_gender"], t),
             f"<h3>{t['referrals_by_age_band']}</h3>", _breakdown(f["referrals_by_age_band"], t),
             f"<h3>{t['income_at_referral']}</h3>", _breakdown(f["income_at_referral"], t),
             f"<p>{t['violence_question_asked']}: {_share(f['violence_question_asked'], t)}</p>",
             f"<h2>{t['meetings']}</h2>",
             f"<p>{t['meetings_held']}: {f['meetings']['held']}. {t['pre_meetings_held']}: {f['pre_meetings_held']}.</p>",
             f"<h3>{t['cancelled_by_reason']}</h3>",
             _table(list(f["meetings"]["cancelled_by_reason"].items()), ("", t["count"])),
             f"<h3>{t['postponements_by_reason']}</h3>",
             _table(list(f["postponements_by_reason"].items()), ("", t["count"])),
             f"<h2>{t['consultations']}</h2>",
             f"<h3>{t['cases_consulted_by_gender']}</h3>", _breakdown(f["cases_consulted_by_gender"], t),
             f"<p>{t['individual_participation']}: {_share(f['individual_participation'], t)}</p>",
             f"<h3>{t['activities']}</h3>", _table(list(f["activities"].items()), ("", t["count"])),
             f"<h3>{t['lead_time_days']}</h3>",
             _table([(k, v["n"], v["median"] if v["median"] is not None else "–")
                     for k, v in {"*": f["lead_time_days"]["all"], **f["lead_time_days"]["by_team"]}.items()],
                    ("", t["count"], "median")),
             f"<h3>{t['queue_by_team']}</h3>", _table(list(f["queue_by_team"].items()), ("", t["count"])),
             f"<h2>{t['outcomes']}</h2>",
             f"<h3>{t['followup_response']}</h3>", _breakdown(f["followup_response"], t),
             f"<h3>{t['public_support']}</h3>",
             _table([(t["at_referral"], _share(f["public_support"]["all"]["at_referral"], t)),
                     (t["at_follow_up"], _share(f["public_support"]["all"]["at_follow_up"], t))], ("", "")),
             f"<h3>{t['self_sufficiency']}</h3>", _breakdown(f["self_sufficiency"]["by_type"], t),
             f"<p>{t['more_ready']}: {_share(f['more_ready'], t)}</p>",
             f"<h3>{t['by_gender_and_party']}</h3>", _outcome_groups(f, t),
             f"<p class=note>{html.escape(t['note'].format(t=threshold))}</p>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#111}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #999;padding:.2em .6em;"
             "text-align:right}td:first-child,th:first-child{text-align:left}"
             "@media print{h2{page-break-before:auto}}")
    return (f"<!doctype html><html lang={lang}><head><meta charset=utf-8><title>{t['title']}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def flatten(value, prefix: str = ""):
    """(path, value) pairs of the figures, for CSV."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def render_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "value"])
    for key, value in report["filter"].items():
        writer.writerow([f"filter.{key}", "" if value is None else value])
    writer.writerow(["suppression_threshold", report["suppression_threshold"]])
    for path, value in flatten(report["figures"]):
        writer.writerow([path, "" if value is None else value])
    return out.getvalue()


def render_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)

// Trisam dashboard: figures from /api/v1/figures and /api/v1/trend (suppressed aggregates only).
const TEXT = {
  sv: {title: "Trisam – nyckeltal", period: "Period", municipality: "Kommun", team: "Team", all: "Alla",
       report: "Kvartalsrapport", lang: "English", referrals_by_party: "Remisser per remitterande part och kvartal (mål: jämn fördelning)",
       referrals_by_gender: "Remisser per kön", lead_and_queue: "Ledtid remiss–konsultation (median, dagar) och kö per team",
       meetings: "Genomförda och inställda möten (per orsak)", public_support: "Andel med offentlig försörjning vid remiss och efter sex månader",
       self_sufficiency: "Egen försörjning efter sex månader, per typ (av dem med försörjningsstöd vid remiss)",
       followup_response: "Svarsfrekvens sexmånadersuppföljning",
       outcomes_by_group: "Utfall efter sex månader per kön och remitterande part: egen försörjning (av dem med försörjningsstöd vid remiss) och mer redo för arbete/studier (av dem som svarat)",
       self_sufficient: "Egen försörjning", more_ready: "Mer redo", group: "Grupp", count: "Antal", share: "Andel", goal: "Mål",
       total: "Totalt", median: "Median (dagar)", queue: "Kö", held: "Genomförda", at_referral: "Vid remiss",
       at_follow_up: "Efter sex månader", updated: "Uppdaterad", reached: "Nådd", not_reached: "Ej nådd", not_recorded: "Ej registrerad",
       note: "\"<{t}\": färre än {t}, noll medräknat; \"x\": dolt, {t} eller fler, så att ett litet antal inte kan räknas fram ur andra siffror, perioder, kommuner eller team; \"–\": dolt, vilket antal som helst. Team visas per kvartal och år."},
  en: {title: "Trisam – key figures", period: "Period", municipality: "Municipality", team: "Team", all: "All",
       report: "Quarterly report", lang: "Svenska", referrals_by_party: "Referrals per referring party and quarter (goal: an even spread)",
       referrals_by_gender: "Referrals by gender", lead_and_queue: "Lead time referral to consultation (median, days) and queue per team",
       meetings: "Meetings held and cancelled (by reason)", public_support: "Share on public support at referral and after six months",
       self_sufficiency: "Self-sufficiency after six months, by type (of those on income support at referral)",
       followup_response: "Six-month follow-up response",
       outcomes_by_group: "Six-month outcomes by gender and referring party: self-sufficient (of those on income support at referral) and more ready for work or studies (of those who answered)",
       self_sufficient: "Self-sufficient", more_ready: "More ready", group: "Group", count: "Count", share: "Share", goal: "Goal",
       total: "Total", median: "Median (days)", queue: "Queue", held: "Held", at_referral: "At referral",
       at_follow_up: "After six months", updated: "Updated", reached: "Reached", not_reached: "Not reached", not_recorded: "Not recorded",
       note: "\"<{t}\": fewer than {t}, zero included; \"x\": hidden, {t} or more, so that a small count cannot be worked out from other figures, periods, municipalities or teams; \"–\": hidden, any count. Teams are shown per quarter and year."},
};
const PATTERNS = ["", "/", "x", ".", "\\", "+", "-", "|"];
// The codes of the figures, as people read them
const CODES = {
  sv: {MAN: "Man", WOMAN: "Kvinna", UNKNOWN: "Okänt", no_cases: "Inga ärenden", staff_absent: "Frånvaro",
       other: "Annat", LON: "Lön", STUDIEMEDEL: "Studiemedel", AKTIVITETSERSATTNING: "Aktivitetsersättning",
       AKTIVITETSSTOD: "Aktivitetsstöd", SJUKERSATTNING: "Sjukersättning", PENSION: "Pension", OKAND: "Okänt",
       other_support: "Annan/ingen försörjning"},
  en: {MAN: "Men", WOMAN: "Women", UNKNOWN: "Unknown", no_cases: "No cases", staff_absent: "Staff absent",
       other: "Other", LON: "Wage", STUDIEMEDEL: "Student aid", AKTIVITETSERSATTNING: "Activity compensation",
       AKTIVITETSSTOD: "Activity support", SJUKERSATTNING: "Sickness compensation", PENSION: "Pension", OKAND: "Unknown",
       other_support: "Other or no income"},
};
const label = (code) => CODES[lang][code] || code;
let lang = new URLSearchParams(location.search).get("lang") || "sv";
const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;
const pct = (v) => v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %";
const num = (v) => typeof v === "number" ? v : null;  // hidden counts are not drawn

function currentQuarter() {
  const d = new Date(); return `${d.getFullYear()}Q${Math.floor(d.getMonth() / 3) + 1}`;
}

const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

function table(id, head, rows) {
  const html = ["<table><thead><tr>", ...head.map((h) => `<th>${esc(h)}</th>`), "</tr></thead><tbody>"];
  for (const row of rows) {
    html.push("<tr>", ...row.map((c, i) => i === 0 ? `<td>${esc(c)}</td>` : `<td data-figure="${esc(id)}:${esc(row[0])}:${i}">${esc(c)}</td>`), "</tr>");
  }
  html.push("</tbody></table>");
  $(id).innerHTML = html.join("");
}

function bars(id, traces, layout = {}) {
  Plotly.react(id, traces.map((tr, i) => ({type: "bar", ...tr,
    marker: {pattern: {shape: PATTERNS[i % PATTERNS.length]}, ...(tr.marker || {})}})),
    {margin: {t: 10, r: 10, b: 60, l: 40}, barmode: "group", legend: {orientation: "h"}, ...layout},
    {displayModeBar: false, responsive: true});
}

function query(extra = {}) {
  const params = new URLSearchParams({period: $("period").value || currentQuarter(), ...extra});
  if ($("municipality").value) params.set("municipality", $("municipality").value);
  if ($("team").value) params.set("team_id", $("team").value);
  return params.toString();
}

async function refresh() {
  try { await draw(); } catch (err) { $("updated").textContent = String(err); }  // try again next round
}

async function draw() {
  const [figures, trend] = await Promise.all([
    fetch("/api/v1/figures?" + query()).then((r) => r.json()),
    fetch("/api/v1/trend?" + query({quarters: 4})).then((r) => r.json())]);
  if (!figures.figures) {
    $("updated").textContent = (figures.detail && figures.detail.message) || JSON.stringify(figures.detail || figures);
    return;
  }
  const f = figures.figures;
  $("note").textContent = t("note").replaceAll("{t}", figures.suppression_threshold);
  $("report").href = `/report/${encodeURIComponent($("period").value || currentQuarter())}?lang=${lang}`;

  const parties = Object.keys(f.referrals_by_party.counts);
  bars("chart-party", [
    ...trend.quarters.map((q, i) => ({name: q.period, x: parties,
      y: parties.map((p) => q.referrals_by_party.shares[p])})),
    {type: "scatter", mode: "lines", name: t("goal"), x: parties, y: parties.map((p) => f.referrals_by_party.goal_share[p]),
     line: {dash: "dash", color: "#000"}}], {yaxis: {tickformat: ".0%"}});
  table("table-party", ["", t("count"), t("share"), t("goal")],
    [...parties.map((p) => [p, f.referrals_by_party.counts[p], pct(f.referrals_by_party.shares[p]), pct(f.referrals_by_party.goal_share[p])]),
     [t("total"), f.referrals_by_party.total, "", ""]]);

  const genders = Object.keys(f.referrals_by_gender.counts);
  bars("chart-gender", [{name: t("count"), x: genders.map(label), y: genders.map((g) => num(f.referrals_by_gender.counts[g]))}]);
  table("table-gender", ["", t("count"), t("share")],
    genders.map((g) => [label(g), f.referrals_by_gender.counts[g], pct(f.referrals_by_gender.shares[g])]));

  const teams = [...new Set([...Object.keys(f.lead_time_days.by_team), ...Object.keys(f.queue_by_team)])].sort();
  bars("chart-lead", [
    {name: t("median"), x: teams, y: teams.map((k) => (f.lead_time_days.by_team[k] || {}).median ?? null)},
    {name: t("queue"), x: teams, y: teams.map((k) => num(f.queue_by_team[k]))}]);
  table("table-lead", ["", t("median"), t("queue")],
    teams.map((k) => [k, (f.lead_time_days.by_team[k] || {}).median ?? "–", f.queue_by_team[k] ?? 0]));

  const reasons = Object.keys(f.meetings.cancelled_by_reason);
  bars("chart-meetings", [{name: t("held"), x: [t("held"), ...reasons.map(label)],
    y: [f.meetings.held, ...reasons.map((r) => f.meetings.cancelled_by_reason[r])]}]);
  table("table-meetings", ["", t("count")], [[t("held"), f.meetings.held], ...reasons.map((r) => [label(r), f.meetings.cancelled_by_reason[r]])]);

  const support = f.public_support.all;
  bars("chart-support", [
    {name: t("at_referral"), x: [t("share")], y: [support.at_referral.share]},
    {name: t("at_follow_up"), x: [t("share")], y: [support.at_follow_up.share]}], {yaxis: {tickformat: ".0%"}});
  table("table-support", ["", t("count"), t("share")], [
    [t("at_referral"), `${support.at_referral.count} / ${support.at_referral.of}`, pct(support.at_referral.share)],
    [t("at_follow_up"), `${support.at_follow_up.count} / ${support.at_follow_up.of}`, pct(support.at_follow_up.share)]]);

  const types = Object.keys(f.self_sufficiency.by_type.counts);
  bars("chart-self", [{name: t("count"), x: types.map(label), y: types.map((k) => num(f.self_sufficiency.by_type.counts[k]))}]);
  table("table-self", ["", t("count"), t("share")],
    types.map((k) => [label(k), f.self_sufficiency.by_type.counts[k], pct(f.self_sufficiency.by_type.shares[k])]));

  // the outcomes per gender and per referring party, each share against its own whole
  const groups = [];
  for (const dimension of ["by_gender", "by_referring_party"]) {
    for (const key of Object.keys(f.self_sufficiency[dimension])) groups.push([dimension, key]);
  }
  const outcome = (dimension, key, which) => which === "self"
    ? f.self_sufficiency[dimension][key] : f.more_ready_by[dimension.replace("by_", "")][key];
  bars("chart-outcomes", ["self", "ready"].map((which) => ({
    name: t(which === "self" ? "self_sufficient" : "more_ready"), x: groups.map(([, k]) => label(k)),
    y: groups.map(([d, k]) => outcome(d, k, which).share)})), {yaxis: {tickformat: ".0%"}});
  const cell = (one) => `${one.count} / ${one.of}` + (one.share == null ? "" : ` (${pct(one.share)})`);
  table("table-outcomes", [t("group"), t("self_sufficient"), t("more_ready")],
    groups.map(([d, k]) => [label(k), cell(outcome(d, k, "self")), cell(outcome(d, k, "ready"))]));

  const response = f.followup_response;
  const kinds = Object.keys(response.counts);
  bars("chart-response", [{name: t("count"), x: kinds.map(t), y: kinds.map((k) => num(response.counts[k]))}]);
  table("table-response", ["", t("count"), t("share")],
    [...kinds.map((k) => [t(k), response.counts[k], pct(response.shares[k])]), [t("total"), response.total, ""]]);
  $("updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString(lang === "sv" ? "sv-SE" : "en-GB")}`;
  document.body.dataset.loaded = "yes";
}

function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang").textContent = t("lang");
}

async function loadTeams() {
  const teams = await fetch("/api/v1/teams").then((r) => r.json());
  const municipalities = [...new Set(teams.map((x) => x.municipality))].sort();
  for (const m of municipalities) $("municipality").add(new Option(m, m));
  for (const x of teams) $("team").add(new Option(`${x.team_name} (${x.team_id})`, x.team_id));
}

$("period").value = new URLSearchParams(location.search).get("period") || currentQuarter();
$("lang").addEventListener("click", () => { lang = lang === "sv" ? "en" : "sv"; translate(); refresh(); });
for (const id of ["period", "municipality", "team"]) $(id).addEventListener("change", refresh);
translate();
loadTeams().then(refresh);
setInterval(refresh, 10000);  // figures follow the events as they arrive

// Trisam dashboard. Two views: the public editions (anyone; county and municipalities, quarters and
// years, small counts protected) and the exact figures (signed-in readers within their scope; every
// read is logged by the service). Names and codes come from /api/v1/catalogue, in words.
const TEXT = {
  sv: {title: "Trisam – nyckeltal", public_view: "Offentlig statistik", exact_view: "Exakta siffror (inloggad)",
       lang: "English", sign_in: "Logga in", sign_out: "Logga ut", role: "Roll", team: "Team", token: "Token från identitetsleverantören",
       role_board: "Styrelsen", role_analyst: "Analytiker", role_coordinator: "Samordnare (team)", role_member: "Teammedlem",
       period: "Period", area: "Område", from: "Från", to: "Till", report: "Rapport", show: "Visa", county: "Hela länet",
       referring_party: "Remitterande part", gender: "Kön", age_band: "Åldersgrupp", income_at_referral: "Försörjning vid remiss",
       outcomes: "Utfall efter sex månader", breakdown: "Uppdelning", municipality: "Kommun", cohort: "per remisskohort", due: "per förfallodag", all: "Alla",
       count: "Antal", share: "Andel", of: "av", total: "Totalt", median: "Median (dagar)", n: "Antal ärenden", goal: "Mål",
       not_applicable: "Gäller inte med valda filter.", signed_in_as: "Inloggad som", no_edition: "Ingen offentlig utgåva ännu.",
       exact_note: "Exakta siffror för {who}. Varje läsning loggas. Får inte lämnas ut utanför systemet.",
       public_note: "Offentlig utgåva {edition} av {period}, gjord {made}: antal 1–4 visas som \"<{t}\"; \"x\" döljer ett antal så att ett litet antal inte kan räknas fram; andelar visas bara över minst 10. Inga team visas. Utfall per förfallodag.",
       sections: ["Ärenden", "Konsultationer", "Möten", "Uppföljning efter sex månader"]},
  en: {title: "Trisam – key figures", public_view: "Public figures", exact_view: "Exact figures (signed in)",
       lang: "Svenska", sign_in: "Sign in", sign_out: "Sign out", role: "Role", team: "Team", token: "Token from the identity provider",
       role_board: "Board", role_analyst: "Analyst", role_coordinator: "Coordinator (team)", role_member: "Team member",
       period: "Period", area: "Area", from: "From", to: "To", report: "Report", show: "Show", county: "The whole county",
       referring_party: "Referring party", gender: "Gender", age_band: "Age band", income_at_referral: "Income at referral",
       outcomes: "Six-month outcomes", breakdown: "Breakdown", municipality: "Municipality", cohort: "by referral cohort", due: "by due date", all: "All",
       count: "Count", share: "Share", of: "of", total: "Total", median: "Median (days)", n: "Cases", goal: "Goal",
       not_applicable: "Does not apply with the filters chosen.", signed_in_as: "Signed in as", no_edition: "No public edition yet.",
       exact_note: "Exact figures for {who}. Every read is logged. Not to be passed on outside the system.",
       public_note: "Public edition {edition} of {period}, made {made}: counts of 1–4 show as \"<{t}\"; \"x\" hides a count so that a small count cannot be worked out; shares only over at least 10. No teams are shown. Outcomes by due date.",
       sections: ["Cases", "Consultations", "Meetings", "Six-month follow-up"]},
};
const SECTIONS = [
  ["cases_referred", "violence_question_asked"],
  ["cases_consulted", "individual_attended", "activities", "lead_time_days", "queue_at_end"],
  ["meetings_held", "meetings_cancelled", "pre_meetings_held", "postponements"],
  ["followups_due", "followups_reached", "public_support_at_referral", "public_support_at_follow_up",
   "on_income_support_at_referral", "self_sufficient", "income_after_income_support", "readiness_answered", "more_ready"],
];
const PATTERNS = ["", "/", "x", ".", "\\", "+", "-", "|"];
const params = new URLSearchParams(location.search);
let lang = params.get("lang") || "sv";
let view = params.get("view") || "public";
let catalogue = null, me = {signed_in: false}, teams = [], lastResult = null;
const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] ?? key;
const pct = (v) => v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %";
const show = (v) => v === null || v === undefined ? "–" : String(v);
const num = (v) => typeof v === "number" ? v : null;  // hidden counts are not drawn
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const label = (code) => (catalogue.labels[code] || {})[lang] || code;
const dimName = (d) => (catalogue.dimensions[d] || {})[lang] || d;
const figureOf = (key) => catalogue.figures.find((f) => f.key === key);

async function api(path, options = {}) {
  const answer = await fetch(path, {credentials: "same-origin", ...options});
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw Object.assign(new Error((body.detail && body.detail.message) || answer.statusText), {status: answer.status});
  return body;
}

function table(id, head, rows) {
  const html = ["<table><thead><tr>", ...head.map((h) => `<th scope="col">${esc(h)}</th>`), "</tr></thead><tbody>"];
  for (const [code, ...cells] of rows) {
    html.push(`<tr><th scope="row">${esc(label(code))}</th>`,
      ...cells.map((c, i) => `<td data-figure="${esc(id)}:${esc(code)}:${i + 1}">${esc(show(c))}</td>`), "</tr>");
  }
  html.push("</tbody></table>");
  return html.join("");
}

function bars(el, traces, layout = {}) {
  Plotly.react(el, traces.map((tr, i) => ({type: "bar", ...tr,
    marker: {pattern: {shape: PATTERNS[i % PATTERNS.length]}, ...(tr.marker || {})}})),
    {margin: {t: 10, r: 10, b: 70, l: 40}, barmode: "group", legend: {orientation: "h"}, ...layout},
    {displayModeBar: false, responsive: true});
}

// The exact view shows one breakdown at a time (chosen above) beside each figure's own detail;
// the public editions have few, and show them all.
function shownBreakdowns(f, answer) {
  const all = Object.entries(answer.by || {});
  if (lastResult && lastResult.audience === "public") return all;
  const chosen = $("exact-breakdown").value;
  return all.filter(([dim]) => dim === chosen || dim === f.detail);
}

function figureSection(f, answer) {
  const section = document.createElement("section");
  section.className = "figure";
  section.id = `figure-${f.key}`;
  const parts = [`<h2>${esc(f[lang])}</h2>`];
  if (answer.applies === false) {
    section.innerHTML = parts.join("") + `<p>${esc(t("not_applicable"))}</p>`;
    return section;
  }
  let chart = null;
  if (f.kind === "median") {
    parts.push(`<p data-figure="${f.key}">${esc(t("median"))}: <strong>${esc(show(answer.median))}</strong> (${esc(t("n"))}: ${esc(show(answer.n))})</p>`);
    for (const [dim, lines] of shownBreakdowns(f, answer)) {
      parts.push(`<h3>${esc(dimName(dim))}</h3>`, table(`${f.key}.${dim}`, [dimName(dim), t("median"), t("n")],
        Object.entries(lines).map(([k, v]) => [k, v.median, v.n])));
      chart ??= {x: Object.keys(lines).map(label), y: Object.values(lines).map((v) => v.median), name: t("median")};
    }
  } else if (f.kind === "share") {
    parts.push(`<p data-figure="${f.key}"><strong>${esc(show(answer.value))}</strong> ${esc(t("of"))} ${esc(show(answer.of))} (${esc(pct(answer.share))})</p>`);
    for (const [dim, lines] of shownBreakdowns(f, answer)) {
      const whole = answer.of;
      parts.push(`<h3>${esc(dimName(dim))}</h3>`, table(`${f.key}.${dim}`, [dimName(dim), t("count"), t("of"), t("share")],
        Object.entries(lines).map(([k, v]) => typeof v === "object" && v !== null ? [k, v.value, v.of, pct(v.share)]
          : [k, v, whole, pct(num(v) !== null && num(whole) >= (lastResult.audience === "public" ? 10 : 1) ? num(v) / whole : null)])));
      chart ??= {x: Object.keys(lines).map(label), y: Object.values(lines).map((v) => (typeof v === "object" && v !== null ? v.share : null)), name: t("share"), pct: true};
    }
  } else {
    parts.push(`<p data-figure="${f.key}">${esc(t("total"))}: <strong>${esc(show(answer.value))}</strong></p>`);
    for (const [dim, lines] of shownBreakdowns(f, answer)) {
      const whole = num(answer.value);
      const head = [dimName(dim), t("count"), t("share")].concat(dim === "referring_party" ? [t("goal")] : []);
      parts.push(`<h3>${esc(dimName(dim))}</h3>`, table(`${f.key}.${dim}`, head, Object.entries(lines).map(([k, v]) =>
        [k, v, pct(whole && num(v) !== null ? num(v) / whole : null)].concat(dim === "referring_party" ? [pct(0.25)] : []))));
      chart ??= {x: Object.keys(lines).map(label), y: Object.values(lines).map(num), name: t("count"), goal: dim === "referring_party" && whole ? whole / 4 : null};
    }
  }
  section.innerHTML = parts.join("");
  if (chart && chart.x.length > 1) {
    const div = document.createElement("div");
    div.className = "chart";
    div.setAttribute("role", "img");
    div.setAttribute("aria-label", f[lang]);
    section.insertBefore(div, section.children[1]);
    const traces = [{name: chart.name, x: chart.x, y: chart.y}];
    if (chart.goal) traces.push({type: "scatter", mode: "lines", name: t("goal"), x: chart.x, y: chart.x.map(() => chart.goal), line: {dash: "dash", color: "#000"}});
    bars(div, traces, chart.pct ? {yaxis: {tickformat: ".0%"}} : {});
  }
  return section;
}

function render(result) {
  lastResult = result;
  $("exact-breakdown").closest("label").hidden = result.audience !== "exact";
  const main = $("figures");
  main.innerHTML = "";
  SECTIONS.forEach((keys, i) => {
    const heading = document.createElement("h2");
    heading.textContent = `${i + 1}. ${t("sections")[i]}`;
    heading.style.gridColumn = "1 / -1";
    main.appendChild(heading);
    for (const key of keys) if (result.figures[key]) main.appendChild(figureSection(figureOf(key), result.figures[key]));
  });
  if (result.audience === "public") {
    $("notice").className = "note public";
    $("notice").textContent = t("public_note").replace("{edition}", result.edition).replace("{period}", result.period)
      .replace("{made}", String(result.made_at).slice(0, 10)).replaceAll("{t}", result.suppression_threshold);
  } else {
    $("notice").className = "note";
    $("notice").textContent = t("exact_note").replace("{who}", `${me.user_id} (${t("role_" + me.role)})`);
  }
  document.body.dataset.loaded = "yes";
  document.body.dataset.audience = result.audience;
}

// ----------------------------------------------------------------------------- the public view

async function loadPublic() {
  const {editions} = await api("/api/v1/public/editions");
  const periods = [...new Map(editions.map((e) => [e.period, e])).keys()];
  const select = $("public-period");
  const chosen = select.value || params.get("period");
  select.innerHTML = periods.map((p) => `<option>${esc(p)}</option>`).join("");
  if (chosen && periods.includes(chosen)) select.value = chosen;
  if (!periods.length) {
    $("figures").innerHTML = "";
    $("notice").textContent = t("no_edition");
    document.body.dataset.loaded = "yes";
    return;
  }
  const municipality = $("public-scope").value;
  const query = new URLSearchParams({period: select.value});
  if (municipality) query.set("municipality", municipality);
  const result = await api("/api/v1/public/figures?" + query);
  const scope = $("public-scope");
  scope.innerHTML = result.scopes.map((s) => `<option value="${s === "county" ? "" : esc(s)}">${esc(s === "county" ? t("county") : s)}</option>`).join("");
  scope.value = municipality;
  $("public-report").href = `/report/${encodeURIComponent(select.value)}?${new URLSearchParams({lang, ...(municipality ? {municipality} : {})})}`;
  $("public-csv").href = `/api/v1/public/figures.csv?${query}&lang=${lang}`;
  render(result);
}

// ----------------------------------------------------------------------------- the exact view

function exactQuery() {
  const query = new URLSearchParams();
  if ($("exact-from").value && $("exact-to").value) {
    query.set("from", $("exact-from").value);
    query.set("to", $("exact-to").value);
  } else {
    query.set("period", $("exact-period").value);
  }
  const [kind, value] = ($("exact-scope").value || "county:").split(":");
  if (kind === "team") query.set("team_id", value);
  if (kind === "municipality") query.set("municipality", value);
  for (const select of document.querySelectorAll("[data-filter]")) if (select.value) query.set(select.dataset.filter, select.value);
  query.set("outcomes", $("exact-outcomes").value);
  return query;
}

function fillControls() {
  for (const select of document.querySelectorAll("[data-filter]")) {
    const current = select.value;
    select.innerHTML = `<option value="">${esc(t("all"))}</option>` +
      catalogue.values[select.dataset.filter].map((v) => `<option value="${esc(v)}">${esc(label(v))}</option>`).join("");
    select.value = current;
  }
  const own = new Set(me.teams || []);
  const county = ["board", "analyst"].includes(me.role);
  const mine = teams.filter((x) => county || own.has(x.team_id));
  const municipalities = [...new Set(mine.map((x) => x.municipality))].sort();
  const scope = $("exact-scope");
  const current = scope.value;
  scope.innerHTML = `<option value="county:">${esc(t("county"))}</option>` +
    municipalities.map((m) => `<option value="municipality:${esc(m)}">${esc(m)}</option>`).join("") +
    mine.map((x) => `<option value="team:${esc(x.team_id)}">${esc(x.team_name)} (${esc(x.team_id)})</option>`).join("");
  scope.value = current || "county:";
}

async function loadExact() {
  if (!$("exact-period").value && !$("exact-from").value) {
    $("exact-period").value = params.get("period") || (await api("/api/v1/span")).latest_quarter;
  }
  const query = exactQuery();
  const result = await api("/api/v1/figures?" + query);
  $("exact-csv").href = `/api/v1/figures.csv?${query}&lang=${lang}`;
  const report = new URLSearchParams({lang, outcomes: query.get("outcomes")});
  for (const k of ["team_id", "municipality"]) if (query.get(k)) report.set(k, query.get(k));
  $("exact-report").href = `/report/${encodeURIComponent(query.get("period") || result.period)}?${report}`;
  render(result);
}

// ----------------------------------------------------------------------------- sign-in, views

async function whoami() {
  me = await api("/api/v1/whoami");
  $("who").textContent = me.signed_in ? `${t("signed_in_as")} ${me.user_id} (${t("role_" + me.role)}${me.teams.length ? ", " + me.teams.join(", ") : ""})` : "";
  $("sign-out").hidden = !me.signed_in;
  if (me.signed_in) teams = await api("/api/v1/teams");
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    if (!$("token-label").hidden) {
      await api("/api/v1/session", {method: "POST", headers: {Authorization: `Bearer ${$("sign-in-token").value.trim()}`}});
    } else {
      await api("/dev/sign-in", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({role: $("sign-in-role").value, team_id: $("sign-in-team").value.trim() || null})});
    }
    await whoami();
    await setView("exact");
  } catch (err) {
    $("sign-in-error").textContent = err.message;
  }
}

async function setView(next) {
  view = next;
  $("view-public").setAttribute("aria-pressed", String(view === "public"));
  $("view-exact").setAttribute("aria-pressed", String(view === "exact"));
  $("public-controls").hidden = view !== "public";
  $("exact-controls").hidden = view !== "exact" || !me.signed_in;
  $("sign-in").hidden = view !== "exact" || me.signed_in;
  $("error").textContent = "";
  if (view === "exact" && !me.signed_in) {
    $("figures").innerHTML = "";
    $("notice").textContent = "";
    return;
  }
  await refresh();
}

async function refresh() {
  document.body.dataset.loaded = "no";
  $("error").textContent = "";
  try {
    if (view === "exact") { fillControls(); await loadExact(); } else { await loadPublic(); }
  } catch (err) {
    $("error").textContent = err.message;
    document.body.dataset.loaded = "error";
  }
}

function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang").textContent = t("lang");
  document.title = t("title");
}

async function start() {
  catalogue = await api("/api/v1/catalogue");
  const devInfo = await fetch("/dev/sign-in").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  const dev = Boolean(devInfo);
  if (dev) $("team-list").innerHTML = devInfo.teams.map((x) => `<option value="${esc(x)}">`).join("");
  $("token-label").hidden = dev;
  for (const id of ["sign-in-role", "sign-in-team"]) $(id).closest("label").hidden = !dev;
  translate();
  await whoami();
  if (dev && params.get("as") && !me.signed_in) {  // development: ?as=board signs in as the board
    await api("/dev/sign-in", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({role: params.get("as"), team_id: params.get("team") || null})}).catch(() => null);
    await whoami();
  }
  await setView(view === "exact" && me.signed_in ? "exact" : view);
}

$("lang").addEventListener("click", () => { lang = lang === "sv" ? "en" : "sv"; translate(); if (lastResult) { fillControlsIfExact(); render(lastResult); } });
function fillControlsIfExact() { if (view === "exact" && me.signed_in) fillControls(); }
$("view-public").addEventListener("click", () => setView("public"));
$("view-exact").addEventListener("click", () => setView("exact"));
$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", async () => { await api("/api/v1/session", {method: "DELETE"}); await whoami(); await setView("public"); });
$("exact-controls").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
$("exact-breakdown").addEventListener("change", () => { if (lastResult) render(lastResult); });
for (const id of ["public-period", "public-scope"]) $(id).addEventListener("change", refresh);
start();

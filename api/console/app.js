// hazmon control-room console: no build step, no framework. Every datum comes from the
// authenticated REST API (session cookie; X-CSRF-Token on writes).
import { STRINGS } from "./i18n.js";
import { RiskMap } from "./map.js";
import { duration, facets, groupBySensor, matches, needsAck, sortRows } from "./alarm_list.js";
import { HistoryView } from "./history.js";
import { renderMimic } from "./site_page.js";

const $ = (sel) => document.querySelector(sel);
const RANGES = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const STALE_MS = 10_000;
const POLL_MS = 1000;
const SLOW_REFRESH_MS = 5000;

const state = {
  lang: localStorage.getItem("hazmon.lang") === "en" ? "en" : "zh",
  user: null,
  csrf: null,
  alarms: [],
  selected: null, // alarm_id of the selected row
  lastRefreshMs: null,
  live: null, // "sse" | "poll"
  es: null,
  timers: [],
  pollTimer: null,
  sseAlarmEvents: 0,
  liveModes: [], // every mode the console went through, for tests
  silenced: new Set(), // alarm ids the operator silenced (still unacknowledged)
  chart: null,
  chartPoints: 0,
  range: "1h",
  route: null,
  filters: { site: "", city: "", priority: "", state: "", kind: "", text: "" },
  sort: { key: "priority", descending: false },
  visibleRows: [], // the rows the list shows now (after grouping, filters and sort)
  names: {}, // Chinese name -> English (the sites' names_en), loaded in English mode
  namesLoaded: false,
  viewTime: {}, // view -> when its data was last loaded (ms): the header's age is the screen's own
  sparks: null,
  map: null, // the regulator's map (map.js), kept across refreshes so a drill-down stays
  mapRefresh: null, // a pending live refresh of the map (at most one per MAP_THROTTLE_MS)
};
const MAP_THROTTLE_MS = 150;

const t = (key) => STRINGS[state.lang][key] ?? key;

// ---- the registry's names in the console's language: Chinese as registered, English from the
// sites' `names_en` (GET /api/v1/names); a site or sensor name without English shows as its id
const CJK = /[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/;

function tn(text, fallback = text) {
  if (state.lang === "zh" || text === null || text === undefined || text === "") return text ?? "";
  const en = state.names[text];
  if (en) return en;
  return CJK.test(text) ? fallback : text;
}

async function loadNames() {
  if (state.lang !== "en" || state.namesLoaded) return;
  try {
    state.names = (await api("/api/v1/names?lang=en")).names;
    state.namesLoaded = true;
  } catch (_) { /* names stay as registered until the next try */ }
}

// ---- API

function readCookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : null;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf || readCookie("hazmon_csrf") || "";
  const r = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401 && path !== "/api/v1/auth/login") {
    showLogin();
    throw new ApiError(401, "unauthenticated");
  }
  if (!r.ok) {
    let detail = r.statusText;
    try {
      const j = await r.json();
      detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  return r.status === 204 ? null : r.json();
}

// ---- i18n

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = "hazmon " + t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  // the switch names the other language in Latin letters (English mode shows no Chinese); its
  // title says it in Chinese for whoever switched by mistake
  $("#lang-btn").textContent = state.lang === "zh" ? "English" : "ZH";
  $("#lang-btn").title = state.lang === "zh" ? "Switch to English" : "切换到中文";
  if (state.user) showUser();
  renderFilterChoices();
  renderAlarms();
  renderBanner();
  renderLastUpdate();
  renderLiveMode();
  if (state.route) route();
}

// ---- sound: a beep built in the browser as a WAV data URI, looping while needed

// ISA-101 style: each priority its own tone, so an operator hears which one came in. critical: fast
// high beeps; high: a slower two-tone; medium: a single low chime every few seconds; low: silent
const TONES = {
  critical: { parts: [[880, 0.35], [0, 0.25]] },
  high: { parts: [[660, 0.3], [520, 0.3], [0, 0.9]] },
  medium: { parts: [[440, 0.25], [0, 2.75]] },
};
const SOUNDED = ["critical", "high", "medium"];

function toneWav(priority) {
  const rate = 8000;
  const parts = TONES[priority].parts;
  const n = Math.round(rate * parts.reduce((t, [, d]) => t + d, 0));
  const buf = new ArrayBuffer(44 + n * 2);
  const v = new DataView(buf);
  const str = (o, s) => [...s].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
  str(0, "RIFF"); v.setUint32(4, 36 + n * 2, true); str(8, "WAVEfmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, n * 2, true);
  let i = 0;
  for (const [hz, dur] of parts) {
    const end = i + Math.round(rate * dur);
    for (let k = 0; i < end && i < n; i++, k++) {
      const s = hz ? Math.sin((2 * Math.PI * hz * k) / rate) * 0.5 : 0;
      v.setInt16(44 + i * 2, s * 32767, true);
    }
  }
  let bin = "";
  const bytes = new Uint8Array(buf);
  for (let j = 0; j < bytes.length; j++) bin += String.fromCharCode(bytes[j]);
  return "data:audio/wav;base64," + btoa(bin);
}

const toneCache = {};
const toneUrl = (p) => (toneCache[p] ??= toneWav(p));

function sounding() {
  return state.alarms.filter((a) => SOUNDED.includes(a.priority) && !a.acked
    && (a.state === "UNACK" || a.state === "RTN_UNACK") && !state.silenced.has(a.alarm_id));
}

// the loudest priority among the alarms still sounding, or null
function soundingPriority() {
  const present = new Set(sounding().map((a) => a.priority));
  return SOUNDED.find((p) => present.has(p)) ?? null;
}

function updateSound() {
  const audio = $("#alarm-sound");
  const live = new Set(state.alarms.map((a) => a.alarm_id));
  for (const id of [...state.silenced]) if (!live.has(id)) state.silenced.delete(id);
  const tone = state.user !== null ? soundingPriority() : null;
  $("#silence-btn").hidden = tone === null;
  if (tone !== null && audio.dataset.tone !== tone) {
    audio.pause();
    audio.src = toneUrl(tone);
    audio.dataset.tone = tone;
  }
  if (tone !== null && audio.paused) {
    audio.play().catch((e) => { audio.dataset.playing = "blocked"; audio.title = String(e); });
  } else if (tone === null && !audio.paused) {
    audio.pause();
    audio.currentTime = 0;
  }
  if (tone === null) audio.dataset.tone = "";
}

// silence this console's horn for what sounds now (a new alarm sounds again); recorded in the
// alarm audit trail with the console's id, so the trail shows who silenced what, and where
function silence() {
  const ids = sounding().map((a) => a.alarm_id);
  for (const id of ids) state.silenced.add(id);
  updateSound();
  if (ids.length) {
    api("/api/v1/alarms/silence", { method: "POST", body: { alarm_ids: ids, console: consoleId() } }).catch(alertError);
  }
}

function consoleId() {
  let id = localStorage.getItem("hazmon.console");
  if (!id) {
    id = "console-" + Math.random().toString(36).slice(2, 10);
    localStorage.setItem("hazmon.console", id);
  }
  return id;
}

// ---- the alarm banner: on every screen, the newest unacknowledged alarm and counts by priority

function renderBanner() {
  const banner = $("#alarm-banner");
  if (!state.user) { banner.hidden = true; return; }
  banner.hidden = false;
  const unacked = state.alarms.filter((a) => a.state === "UNACK" || a.state === "RTN_UNACK");
  const counts = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const a of unacked) counts[a.priority] += 1;
  for (const el of banner.querySelectorAll(".count")) {
    el.querySelector("b").textContent = String(counts[el.dataset.priority]);
    el.classList.toggle("zero", counts[el.dataset.priority] === 0);
  }
  const newest = unacked.reduce((n, a) => (!n || (a.raised_ms ?? 0) > (n.raised_ms ?? 0) ? a : n), null);
  const link = $("#banner-newest");
  link.className = `banner-newest prio-${newest?.priority ?? "none"}`;
  link.dataset.alarmId = newest?.alarm_id ?? "";
  link.textContent = newest
    ? `${STRINGS[state.lang].priority[newest.priority]} · ${(newest.raised || "").slice(11, 19)} · ${tn(newest.site_name, newest.site) || newest.site} ${newest.source} ${tn(newest.level, "")} · ${alarmText(newest)}`
    : t("no_unacked");
  banner.dataset.unacked = String(unacked.length);
}

// ---- alarms

function sortAlarms(list) {
  return sortRows(list.map((a) => ({ ...a, oldestRaisedMs: a.raised_ms ?? Infinity })), "priority");
}

const shortTime = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "–");
const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: 2 }));

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function renderAlarms() {
  const tbody = $("#alarm-rows");
  if (!tbody) return;
  tbody.replaceChildren();
  const S = STRINGS[state.lang];
  const pri = S.priority, st = S.state;
  const rows = sortRows(groupBySensor(state.alarms).filter((r) => matches(r, state.filters)), state.sort.key, state.sort.descending);
  state.visibleRows = rows;
  if (state.selected && !rows.some((r) => r.alarm_id === state.selected)) state.selected = null;
  const now = Date.now();
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.className = `alarm state-${a.state} prio-${a.priority}`;
    tr.dataset.alarmId = a.alarm_id;
    tr.dataset.state = a.state;
    tr.dataset.site = a.site;
    tr.dataset.members = a.members.map((m) => m.alarm_id).join(" ");
    if (a.alarm_id === state.selected) tr.classList.add("selected");
    cell(tr, pri[a.priority] ?? a.priority, "prio");
    cell(tr, st[a.state] ?? a.state, "state");
    const where = cell(tr, tn(a.site_name, a.site) || a.site, "site");
    if (a.city || a.district) {
      const small = document.createElement("small");
      small.textContent = [tn(a.city), tn(a.district)].filter(Boolean).join(" ");
      where.append(document.createElement("br"), small);
    }
    cell(tr, a.source);
    const others = a.members.filter((m) => m.alarm_id !== a.alarm_id);
    cell(tr, tn(a.level, a.kind) + (others.length ? ` (+${others.map((m) => tn(m.level, m.kind)).join(", ")})` : ""), "level");
    cell(tr, `${fmt(a.value)} / ${fmt(a.current_value)} / ${fmt(a.limit)}`, "num values");
    cell(tr, a.raised ? a.raised.replace("T", " ").slice(0, 19) : "–", "time");
    const live = a.members.some((m) => m.active);
    const d = cell(tr, live ? duration(now - a.oldestRaisedMs, S.units) : "–", "num duration");
    d.dataset.since = live ? String(a.oldestRaisedMs) : "";
    cell(tr, a.acked_by ? `${a.acked_by} ${shortTime(a.acked_at).slice(11)}` : "–", "acked");
    cell(tr, a.returned ? a.returned.replace("T", " ").slice(11, 19) : "–", "time returned");
    cell(tr, alarmText(a), "msg");
    const actions = cell(tr, "", "actions");
    if (a.unacked.length) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "ack-btn"; b.textContent = t("ack");
      b.addEventListener("click", (ev) => { ev.stopPropagation(); acknowledgeRows([a]); });
      actions.appendChild(b);
    }
    if (a.state !== "SHELVED" && a.state !== "OUT_OF_SERVICE") {
      const b = document.createElement("button");
      b.type = "button"; b.className = "shelve-btn"; b.textContent = t("shelve");
      b.addEventListener("click", (ev) => { ev.stopPropagation(); openShelve(a.alarm_id); });
      actions.appendChild(b);
    }
    if (a.priority === "high" || a.priority === "critical") {  // the enterprise must say what it did
      const b = document.createElement("button");
      b.type = "button"; b.className = "dispose-btn"; b.textContent = t("dispose");
      b.addEventListener("click", (ev) => { ev.stopPropagation(); openDispose(a.alarm_id); });
      actions.appendChild(b);
    }
    tr.addEventListener("click", () => { state.selected = a.alarm_id; renderAlarms(); });
    tbody.appendChild(tr);
  }
  $("#alarm-empty").hidden = rows.length > 0;
  $("#alarm-shown").textContent = t("shown")(rows.length, state.alarms.length);
  $("#ack-visible").disabled = !rows.some((r) => r.unacked.length);
  for (const th of document.querySelectorAll("#alarm-table th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.descending ? "descending" : "ascending") : "none");
  }
}

// a dynamic-risk factor (/api/v1/risk `factors`) in English
function factorText(f) {
  const pts = f.points === null ? "" : `: +${Math.round(f.points)}`;
  switch (f.factor) {
    case "critical_active": return `critical alarm in progress (${f.critical}): red`;
    case "grade": return `${f.tailings ? "pond class" : "grade"} ${f.grade}${pts}`;
    case "unacknowledged":
      return `unacknowledged ${["critical", "high", "medium", "low"].filter((k) => f[k]).map((k) => `${k} ${f[k]}`).join(", ")}${pts}`;
    case "early_warnings": return `early warnings ${f.warnings}${f.failures ? `, failure forecasts ${f.failures}` : ""}${pts}`;
    case "outages": return `data outages ${f.outages}${pts}`;
    case "overdue": return `disposals overdue ${f.overdue}${pts}`;
    case "alarm_rate": return `alarms in 7 days ${f.raises_7d} (${(f.raises_7d / 7).toFixed(1)} a day)${pts}`;
    default: return f.factor;
  }
}

// the time-in-alarm cells tick every second without redrawing the list
function tickDurations() {
  const now = Date.now(), units = STRINGS[state.lang].units;
  for (const td of document.querySelectorAll("#alarm-rows td.duration")) {
    if (td.dataset.since) td.textContent = duration(now - Number(td.dataset.since), units);
  }
}

// the alarm's text in the console's language, from its data (the stored text is Chinese)
function alarmText(a) {
  if (state.lang === "zh") return a.message;
  const kind = STRINGS.en.kind[a.kind] ?? a.kind;
  const where = a.source;
  if (a.limit !== null && a.limit !== undefined && a.value !== null && a.value !== undefined) {
    return `${where} ${kind} ${a.level}: ${fmt(a.value)} (limit ${fmt(a.limit)})`;
  }
  return `${where} ${kind}${a.level ? ` ${a.level}` : ""}`;
}

function renderFilterChoices() {
  const f = facets(state.alarms);
  const fill = (sel, items) => {
    const el = $(sel), keep = el.value;
    const first = el.options[0];
    el.replaceChildren(first);
    for (const [value, label] of items) {
      const o = document.createElement("option");
      o.value = value; o.textContent = label;
      el.appendChild(o);
    }
    el.value = items.some(([v]) => v === keep) ? keep : "";
  };
  fill("#f-site", f.sites.map((x) => [x.id, tn(x.name, x.id)]));
  fill("#f-city", f.cities.map((c) => [c, tn(c)]));
  fill("#f-kind", f.kinds.map((k) => [k, STRINGS[state.lang].kind[k] ?? k]));
}

function bindFilters() {
  const bind = (sel, key, ev = "change") => $(sel).addEventListener(ev, (e) => {
    state.filters[key] = e.target.value;
    renderAlarms();
  });
  bind("#f-site", "site"); bind("#f-city", "city"); bind("#f-priority", "priority");
  bind("#f-state", "state"); bind("#f-kind", "kind"); bind("#f-search", "text", "input");
  for (const th of document.querySelectorAll("#alarm-table th[data-sort]")) {
    th.tabIndex = 0;
    const sortBy = () => {
      const key = th.dataset.sort;
      state.sort = { key, descending: state.sort.key === key ? !state.sort.descending : false };
      renderAlarms();
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") sortBy(); });
  }
  $("#ack-visible").addEventListener("click", () => acknowledgeRows(state.visibleRows));
  $("#ack-form").addEventListener("submit", submitAck);
  $("#ack-cancel").addEventListener("click", () => $("#ack-dialog").close());
}

async function refreshAlarms() {
  if (!state.user) return;
  const body = await api("/api/v1/alarms");
  state.alarms = sortAlarms(body.data);
  renderFilterChoices();
  renderAlarms();
  renderBanner();
  $("#alarm-table").dataset.loaded = "true";
  $("#alarm-table").dataset.count = String(state.alarms.length);
  state.lastRefreshMs = Date.now();
  renderLastUpdate();
  updateSound();
}

async function refreshFloods() {
  if (!state.user) return;
  const body = await api("/api/v1/alarm-floods");
  const banner = $("#flood-banner");
  banner.hidden = body.count === 0;
  banner.textContent = body.count === 0 ? "" : `${t("flood")}: ` + body.data.map((f) => t("flood_detail")(f)).join("；");
}

// Acknowledge rows (and every alarm each one groups): a critical one needs a comment, asked for in
// a dialog; the others are acknowledged at once when alone, or with the dialog's optional comment
function acknowledgeRows(rows) {
  const ids = rows.flatMap((r) => r.unacked.map((m) => m.alarm_id));
  if (ids.length === 0) return;
  const critical = rows.some((r) => r.unacked.some((m) => m.priority === "critical"));
  if (!critical && ids.length === 1) {
    sendAcks(ids, "").then((errors) => { if (errors.length) alertError(errors[0]); });
    return;
  }
  const dlg = $("#ack-dialog");
  dlg.dataset.ids = ids.join(" ");
  dlg.dataset.critical = String(critical);
  $("#ack-target").textContent = t("ack_target")(ids.length, ids.slice(0, 6).join(", ") + (ids.length > 6 ? " …" : ""));
  $("#ack-comment-label").textContent = critical ? t("ack_comment_required") : t("ack_comment");
  $("#ack-comment").required = critical;
  $("#ack-comment").value = "";
  $("#ack-error").textContent = "";
  dlg.showModal();
  $("#ack-comment").focus();
}

async function submitAck(ev) {
  ev.preventDefault();
  const dlg = $("#ack-dialog");
  const comment = $("#ack-comment").value.trim();
  if (dlg.dataset.critical === "true" && !comment) {
    $("#ack-error").textContent = t("ack_comment_required");
    return;
  }
  const errors = await sendAcks(dlg.dataset.ids.split(" "), comment);
  if (errors.length) {
    $("#ack-error").textContent = errors.map((e) => `${e.status}: ${errorText(e)}`).join("；");
    return;
  }
  dlg.close();
}

async function sendAcks(ids, comment) {
  const errors = [];
  for (const id of ids) {
    try {
      await api(`/api/v1/alarms/${encodeURIComponent(id)}/ack`, { method: "POST", body: { comment } });
    } catch (e) {
      if (e.status !== 409) errors.push(e); // acknowledged meanwhile (another console, an SMS): done
    }
  }
  await refreshAlarms().catch(() => {});
  return errors;
}

function openShelve(id) {
  const dlg = $("#shelve-dialog");
  dlg.dataset.alarmId = id;
  const a = state.alarms.find((x) => x.alarm_id === id);
  $("#shelve-target").textContent = a ? `${a.alarm_id} ${a.site} ${a.source} ${a.level}` : id;
  $("#shelve-error").textContent = "";
  $("#shelve-reason").value = "";
  dlg.showModal();
  $("#shelve-reason").focus();
}

async function submitShelve(ev) {
  ev.preventDefault();
  const dlg = $("#shelve-dialog");
  const reason = $("#shelve-reason").value.trim();
  const minutes = Number($("#shelve-minutes").value);
  if (!reason || !(minutes > 0)) return;
  try {
    await api(`/api/v1/alarms/${encodeURIComponent(dlg.dataset.alarmId)}/shelve`, { method: "POST", body: { reason, minutes } });
    dlg.close();
  } catch (e) {
    $("#shelve-error").textContent = `${e.status}: ${errorText(e)}`;
    return;
  }
  await refreshAlarms().catch(() => {});
}

function openDispose(id) {
  const dlg = $("#dispose-dialog");
  dlg.dataset.alarmId = id;
  const a = state.alarms.find((x) => x.alarm_id === id);
  $("#dispose-target").textContent = a ? `${a.alarm_id} ${a.site} ${a.source} ${a.level}` : id;
  $("#dispose-error").textContent = "";
  $("#dispose-action").value = "";
  dlg.showModal();
  $("#dispose-action").focus();
}

async function submitDispose(ev) {
  ev.preventDefault();
  const dlg = $("#dispose-dialog");
  const body = {
    cause: $("#dispose-cause").value,
    action: $("#dispose-action").value.trim(),
    person: $("#dispose-person").value.trim(),
  };
  if (!body.action || !body.person) return;
  try {
    await api(`/api/v1/alarms/${encodeURIComponent(dlg.dataset.alarmId)}/dispose`, { method: "POST", body });
    dlg.close();
  } catch (e) {
    $("#dispose-error").textContent = `${e.status}: ${errorText(e)}`;
    return;
  }
  await refreshAlarms().catch(() => {});
}

// ---- enterprises ranked by dynamic risk (/api/v1/risk), the ten highest, on the sites overview

async function renderRiskRanking() {
  const body = await api("/api/v1/risk?limit=10000");
  await renderMap(body);
  const tbody = $("#risk-rows");
  tbody.replaceChildren();
  const risk = STRINGS[state.lang].risk;
  for (const r of body.data.slice(0, 10)) {
    const tr = document.createElement("tr");
    tr.className = `risk-row risk-${r.colour}`;
    tr.dataset.siteId = r.site;
    tr.dataset.colour = r.colour;
    const link = document.createElement("a");
    link.href = `#/sites/${encodeURIComponent(r.site)}`;
    link.textContent = tn(r.name, r.site);
    cell(tr, "").appendChild(link);
    cell(tr, fmt(r.score), "num");
    const c = cell(tr, risk[r.colour] ?? r.colour, "colour-badge");
    c.dataset.level = { red: "RED", orange: "ORANGE", yellow: "YELLOW", blue: "BLUE" }[r.colour];
    cell(tr, state.lang === "zh" ? r.reasons.slice(0, 2).join("；") : (r.factors || []).slice(0, 2).map(factorText).join("; "));
    tbody.appendChild(tr);
  }
  $("#risk-ranking").hidden = body.count === 0;
}

// ---- the map (一张图): every site in scope by dynamic risk; live from the stream

async function renderMap(body) {
  if (!state.map) {
    state.map = new RiskMap($("#risk-map"), $("#map-crumbs"), {
      onSite: (id) => { location.hash = `#/sites/${encodeURIComponent(id)}`; },
      onArea: (area, regions) => { renderAreaSummary(area, regions).catch(() => {}); },
      tn,
      reasonOf: (r) => (state.lang === "zh" ? r.reasons?.[0] ?? "" : r.factors?.[0] ? factorText(r.factors[0]) : ""),
      strings: STRINGS[state.lang],
    });
    window.hazmonMap = state.map; // tests find markers through it
  }
  await state.map.update(body.data, STRINGS[state.lang]);
}

// the aggregates of the regions of the area on the map (/api/v1/jurisdictions), for a regulator:
// a province's cities, a city's districts; only regions holding sites in scope
const SUB_LEVEL = { country: "province", province: "city", city: "district" };

async function renderAreaSummary(area, regions) {
  const level = SUB_LEVEL[area.level];
  const table = $("#area-summary");
  if (!level) { table.hidden = true; return; }
  const body = await api(`/api/v1/jurisdictions?level=${level}`);
  const names = new Set(regions);
  const rows = body.data.filter((a) => names.has(a.name) && (level !== "district" || a.city === area.name));
  const tbody = $("#area-rows");
  tbody.replaceChildren();
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.className = "area-row";
    tr.dataset.area = a.name;
    cell(tr, tn(a.name));
    cell(tr, String(a.sites), "num");
    cell(tr, ["red", "orange", "yellow", "blue"].map((c) => a.by_colour[c] ?? 0).join(" / "), "num");
    cell(tr, String(a.unacknowledged), "num");
    cell(tr, String(a.overdue_disposals), "num");
    cell(tr, fmt(a.worst_score), "num");
    tbody.appendChild(tr);
  }
  table.hidden = rows.length === 0;
}

// an alarm event moves the overview (tiles, ranking, map): fetch it again (the API recomputes it
// when the alarm book changes), at most once per MAP_THROTTLE_MS however many events arrive
function refreshOverviewSoon() {
  if (state.mapRefresh) return;
  const parts = state.route || [];
  if (parts[0] !== "sites") return;
  state.mapRefresh = setTimeout(async () => {
    try {
      if (parts[2] === "sensors" && parts[3]) await renderTrend(parts[1], parts[3]);
      else if (parts[1]) await renderSite(parts[1]);
      else await renderSites();
    } catch (_) { /* the next event or the 5 s refresh tries again */ }
    state.mapRefresh = null;
  }, MAP_THROTTLE_MS);
}

// ---- the alarms whose disposal is overdue, for the regulator (on the sites overview)

async function renderOverdue() {
  const body = await api("/api/v1/disposals?state=overdue");
  const box = $("#overdue");
  const tbody = $("#overdue-rows");
  tbody.replaceChildren();
  for (const d of body.data) {
    const tr = document.createElement("tr");
    tr.className = "overdue-row";
    tr.dataset.alarmId = d.alarm_id;
    cell(tr, d.site);
    cell(tr, d.source);
    cell(tr, tn(d.level, d.kind));
    cell(tr, d.raised.replace("T", " ").slice(0, 19), "time");
    cell(tr, d.due.replace("T", " ").slice(0, 19), "time");
    tbody.appendChild(tr);
  }
  box.hidden = body.count === 0;
  box.dataset.count = String(body.count);
}

// an error in the console's language: the status says what happened, the detail is kept for
// 422 (which field) and shown after it; a 404 never says more than "not found or not yours"
function errorText(e) {
  const E = STRINGS[state.lang].errors;
  if (e.status === 404) return E.not_found;
  if (e.status === 403) return E.forbidden;
  if (e.status === 409) return `${E.conflict} (${e.message})`;
  if (e.status === 422) return `${E.invalid}: ${e.message}`;
  if (e.status === 429) return E.too_many;
  if (e.status >= 500) return E.server;
  if (!e.status) return E.network;
  return e.message;
}

// ---- the kept reports of the caller's scope, with their files (GET /api/v1/reports)

async function renderReports() {
  const body = await api("/api/v1/reports?limit=200");
  const tbody = $("#report-rows");
  tbody.replaceChildren();
  const strings = STRINGS[state.lang];
  for (const r of body.data) {
    const tr = document.createElement("tr");
    tr.className = "report-row";
    tr.dataset.reportId = r.id;
    tr.dataset.state = r.state;
    cell(tr, r.label);
    cell(tr, `${strings.period_kind[r.period.kind] ?? r.period.kind} ${r.period.label}`);
    cell(tr, fmt(r.sites), "num");
    cell(tr, strings.report_state[r.state] ?? r.state);
    cell(tr, r.summary ? fmt(r.summary.raises) : "", "num");
    const files = cell(tr, "");
    for (const [format, file] of Object.entries(r.files)) {
      const link = document.createElement("a");
      link.href = file.url;
      link.className = `report-file report-${format}`;
      link.textContent = format.toUpperCase();
      link.setAttribute("download", "");
      files.append(link, " ");
    }
    tbody.appendChild(tr);
  }
  $("#report-empty").hidden = body.count > 0;
  $("#report-table").dataset.loaded = "true";
}

function alertError(e) {
  const el = $("#error-banner"); // a click hides it
  el.hidden = false;
  el.textContent = `${e.status ?? ""} ${errorText(e)}`;
}

function onKey(ev) {
  if (!state.user || document.querySelector("dialog[open]") || $("#alarms-view").hidden) return;
  if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
  const ids = state.visibleRows.map((a) => a.alarm_id);
  if (ids.length === 0) return;
  const i = ids.indexOf(state.selected);
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    const next = ev.key === "ArrowDown" ? Math.min(i + 1, ids.length - 1) : Math.max(i - 1, 0);
    state.selected = ids[i < 0 ? 0 : next];
    renderAlarms();
    document.querySelector("tr.selected")?.scrollIntoView({ block: "nearest" });
    ev.preventDefault();
  } else if ((ev.key === "a" || ev.key === "A") && state.selected) {
    const row = state.visibleRows.find((r) => r.alarm_id === state.selected);
    if (row) acknowledgeRows([row]);
    ev.preventDefault();
  } else if ((ev.key === "s" || ev.key === "S") && state.selected) {
    openShelve(state.selected);
    ev.preventDefault();
  }
}

// ---- freshness indicator

// the age of what the current screen shows: the list's last refresh on the alarm screen, else the
// screen's own data (a stuck overview must not borrow the list's freshness)
function currentViewTime() {
  const parts = state.route || [];
  if (parts[0] === "sites") return parts[2] === "sensors" ? state.viewTime.sensor : state.viewTime.sites;
  if (parts[0] === "history" || parts[0] === "reports") return state.viewTime[parts[0]];
  return state.lastRefreshMs;
}

function renderLastUpdate() {
  const el = $("#last-update");
  const when = currentViewTime() ?? null;
  if (!state.user || when === null) {
    el.textContent = state.user ? t("never") : "";
    el.dataset.stale = "false";
    return;
  }
  const age = Date.now() - when;
  // history and reports are queries, not live screens: their age is shown, never "stale"
  const live = !["history", "reports"].includes((state.route || [])[0]);
  const stale = live && age > STALE_MS;
  el.dataset.stale = String(stale);
  el.classList.toggle("stale", stale);
  const at = new Date(when).toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  el.textContent = `${t("updated")} ${at} (${Math.floor(age / 1000)} ${t("seconds_ago")})` + (stale ? ` ${t("stale")}` : "");
}

function renderLiveMode() {
  $("#live-mode").textContent = state.user && state.live ? t(state.live === "sse" ? "live_sse" : "live_poll") : "";
}

// ---- live updates: SSE when the service has /api/v1/stream, else polling every second

function startLive() {
  stopLive();
  const safe = (f) => () => f().catch(() => {});
  state.timers.push(setInterval(renderLastUpdate, 1000));
  state.timers.push(setInterval(tickDurations, 1000));
  state.timers.push(setInterval(safe(refreshFloods), SLOW_REFRESH_MS));
  state.timers.push(setInterval(safe(refreshView), SLOW_REFRESH_MS));
  // while SSE is up, a slow poll still keeps the freshness indicator honest
  state.timers.push(setInterval(() => { if (state.live === "sse") refreshAlarms().catch(() => {}); }, SLOW_REFRESH_MS));
  let es;
  try {
    es = new EventSource("/api/v1/stream");
  } catch (_) {
    startPolling();
    return;
  }
  state.es = es;
  es.addEventListener("open", () => { stopPolling(); setLive("sse"); });
  es.addEventListener("alarm", () => {
    state.sseAlarmEvents += 1;
    refreshAlarms().catch(() => {});
    refreshOverviewSoon();
  });
  es.addEventListener("error", () => {
    if (state.es !== es) return;
    // a 404 or a wrong content type closes the EventSource for good; a dropped connection is
    // retried by the browser (resuming with Last-Event-ID): poll meanwhile, stop when it reopens
    if (es.readyState === EventSource.CLOSED) state.es = null;
    startPolling();
  });
}

function startPolling() {
  if (state.pollTimer !== null) return;
  setLive("poll");
  state.pollTimer = setInterval(() => refreshAlarms().catch(() => {}), POLL_MS);
  refreshAlarms().catch(() => {});
}

function stopPolling() {
  if (state.pollTimer !== null) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function setLive(mode) {
  state.live = mode;
  state.liveModes.push(mode);
  renderLiveMode();
}

function stopLive() {
  stopPolling();
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.es) state.es.close();
  state.es = null;
  state.live = null;
}

// ---- sites

function ageText(s) {
  return s === null || s === undefined ? t("no_data") : t("age_s")(Math.round(s));
}

async function renderSites() {
  const [body] = await Promise.all([api("/api/v1/sites"), renderOverdue(), renderRiskRanking()]);
  const grid = $("#site-grid");
  grid.replaceChildren();
  const risk = STRINGS[state.lang].risk, pri = STRINGS[state.lang].priority;
  for (const s of body.data) {
    const a = document.createElement("a");
    a.className = `site-tile risk-${s.risk_colour}`;
    a.href = `#/sites/${encodeURIComponent(s.id)}`;
    a.dataset.siteId = s.id;
    a.dataset.risk = s.risk_colour;
    const c = s.alarm_counts;
    const lines = [
      [tn(s.name, s.id), "name"],
      [`${s.id} · ${[tn(s.city), tn(s.district)].filter(Boolean).join(" ")}`, "where"],
      [`${risk[s.risk_colour]} · ${t("worst")}: ${s.worst_priority ? pri[s.worst_priority] : t("ok")}`, "risk"],
      [`${t("counts")}: ${c.unack} / ${c.ack} / ${c.rtn_unack} / ${c.shelved}`, "counts"],
      [`${t("col_age")}: ${ageText(s.data_age_s)}`, "age"],
    ];
    for (const [text, cls] of lines) {
      const d = document.createElement("div");
      d.className = cls; d.textContent = text;
      a.appendChild(d);
    }
    grid.appendChild(a);
  }
  grid.dataset.loaded = "true";
  state.viewTime.sites = Date.now();
  grid.dataset.count = String(body.count);
}

async function renderSite(siteId) {
  const base = `/api/v1/sites/${encodeURIComponent(siteId)}`;
  const [s, devices, sparks] = await Promise.all([
    api(base),
    api(`${base}/devices`).catch(() => ({ data: [] })),
    // sparklines are an hour's course: fetched again at most every 30 s, not on every refresh
    sparklinesOf(siteId).catch(() => ({ data: {} })),
  ]);
  $("#site-detail").hidden = false;
  $("#site-title").textContent = `${tn(s.name, s.id)} (${s.id})`;
  $("#crumb-place").textContent = [s.province, s.city, s.district].map((x) => tn(x)).filter(Boolean).join(" ") || "–";
  $("#crumb-site").textContent = tn(s.name, s.id);
  const S = STRINGS[state.lang];
  renderMimic($("#site-mimic"), s, {
    devices: devices.data, sparks: sparks.data, S, fmt, ageText, stateName, tn,
    link: (x) => `#/sites/${encodeURIComponent(s.id)}/sensors/${encodeURIComponent(x.id)}`,
  });
  $("#site-mimic").dataset.loaded = "true";
  state.viewTime.sites = Date.now();
  await renderRegister(s);
  await renderPondLevels(s);
}

const SPARK_MAX_AGE_MS = 30_000;

async function sparklinesOf(siteId) {
  const cached = state.sparks;
  if (cached && cached.site === siteId && Date.now() - cached.at < SPARK_MAX_AGE_MS) return cached.body;
  const body = await api(`/api/v1/sites/${encodeURIComponent(siteId)}/sparklines?minutes=60&points=60`);
  state.sparks = { site: siteId, at: Date.now(), body };
  return body;
}

// ---- the hazard-source register: the computed grade (GB 18218) or class beside the declared one

async function renderRegister(site) {
  const panel = $("#register");
  let r;
  try {
    r = await api(`/api/v1/sites/${encodeURIComponent(site.id)}/register`);
  } catch (e) {
    panel.hidden = true;
    return;
  }
  const names = r.kind === "tailings" ? t("class_names") : t("grade_names");
  const computed = r.computed === null ? (r.units.length ? t("not_major") : "–") : names[r.computed];
  const grade = $("#register-grade");
  grade.textContent = `${t("computed")} ${computed} · ${t("declared")} ${names[r.declared] ?? r.declared}`
    + (r.agrees ? "" : ` (${t("differs")})`);
  grade.dataset.computed = String(r.computed);
  grade.dataset.agrees = String(r.agrees);
  const tbody = $("#register-units");
  tbody.replaceChildren();
  for (const u of r.units) {
    const tr = document.createElement("tr");
    tr.className = "register-unit";
    tr.dataset.unitId = u.id;
    cell(tr, tn(u.name, u.id));
    cell(tr, fmt(u.s), "num");
    cell(tr, fmt(u.alpha), "num");
    cell(tr, fmt(u.r), "num");
    cell(tr, u.grade === null ? t("not_major") : names[u.grade]);
    tbody.appendChild(tr);
  }
  // the computation: the server's lines in Chinese, else the unit's figures (the lines are Chinese)
  $("#register-lines").textContent = state.lang === "zh"
    ? [...r.units.flatMap((u) => [`${u.id} ${u.name}:`, ...u.lines.map((l) => `  ${l}`)]), ...r.lines].join("\n")
    : r.units.map((u) => `${u.id} ${tn(u.name, u.id)}: S = Σ q/Q = ${fmt(u.s)}; R = α Σ β q/Q = ${fmt(u.r)} (α ${fmt(u.alpha)}): `
      + (u.grade === null ? t("not_major") : names[u.grade])).join("\n");
  panel.hidden = false;
}

// ---- discrete signals: a state's name from its code

function stateName(states, code) {
  if (code === null || code === undefined) return "–";
  const name = states[Math.round(code)];
  return name === undefined ? String(code) : (STRINGS[state.lang].state_names[name] ?? tn(name, String(code)));
}

function renderStateHistory(h) {
  const box = $("#state-history");
  if (!h.states) { box.hidden = true; return; }
  box.hidden = false;
  const tbody = $("#state-rows");
  tbody.replaceChildren();
  const { t_ms: ts, value: vs } = h.series;
  let last = null;
  const rows = [];
  for (let i = 0; i < ts.length; i++) {
    if (vs === null || vs === undefined || vs[i] === null || vs[i] === last) continue;
    last = vs[i];
    rows.push([ts[i], vs[i]]);
  }
  for (const [tm, v] of rows.reverse()) {  // newest first
    const tr = document.createElement("tr");
    tr.className = "state-change";
    tr.dataset.state = h.states[Math.round(v)] ?? String(v);
    cell(tr, new Date(tm).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }), "time");
    cell(tr, stateName(h.states, v));
    tbody.appendChild(tr);
  }
  box.dataset.count = String(rows.length);
}

// ---- a tailings pond's warning colours: the pond, its items, their points (one incident)

function colourName(level) {
  return level ? STRINGS[state.lang].colour[level] : t("no_colour");
}

async function renderPondLevels(site) {
  const panel = $("#pond-levels");
  if (site.kind !== "tailings") { panel.hidden = true; return; }
  let body;
  try {
    body = await api(`/api/v1/sites/${encodeURIComponent(site.id)}/warning-levels`);
  } catch (e) {
    panel.hidden = true;  // a pond without warning levels answers 404
    return;
  }
  panel.hidden = false;
  const badge = $("#pond-level");
  badge.textContent = colourName(body.level);
  badge.dataset.level = body.level || "NONE";
  // the server's message is Chinese; in English the pond's colour says it
  $("#pond-message").textContent = state.lang === "zh" ? body.message || "" : body.level ? `${t("pond_warning")}: ${colourName(body.level)}` : "";
  const tbody = $("#pond-items");
  tbody.replaceChildren();
  for (const item of body.items) {
    const tr = document.createElement("tr");
    tr.className = "pond-item";
    tr.dataset.itemId = item.id;
    tr.dataset.level = item.level || "NONE";
    cell(tr, tn(item.name, item.id));
    const lv = cell(tr, colourName(item.level));
    lv.className = "colour-badge";
    lv.dataset.level = item.level || "NONE";
    cell(tr, item.points.map((p) => `${p.sensor} ${colourName(p.level)}`).join(", "));
    tbody.appendChild(tr);
  }
}

// ---- trend

async function renderTrend(siteId, sensorId) {
  const end = Date.now();
  const start = end - RANGES[state.range];
  const base = `/api/v1/sites/${encodeURIComponent(siteId)}/sensors/${encodeURIComponent(sensorId)}`;
  const [h, f] = await Promise.all([
    api(`${base}/history?start=${start}&end=${end}`),
    api(`${base}/forecast`).catch(() => ({ active: false })),
  ]);
  $("#sensor-title").textContent = `${siteId} / ${sensorId} (${h.unit}, ${h.resolution})`;
  for (const b of document.querySelectorAll("#zoom button")) b.classList.toggle("active", b.dataset.range === state.range);
  const raw = h.resolution === "raw";
  const ys = raw ? h.series.value : h.series.mean;
  const data = h.series.t_ms.map((tm, i) => [tm, ys[i]]);
  const lim = h.limits;
  const markLine = {
    symbol: "none",
    data: ["ll", "l", "h", "hh"].filter((k) => lim[k] !== null).map((k) => ({
      yAxis: lim[k], name: k.toUpperCase(),
      label: { formatter: `${k.toUpperCase()} ${lim[k]}`, position: "insideEndTop" },
      lineStyle: { color: k.length === 2 ? "#d00" : "#e80", type: "dashed" },
    })),
  };
  const markPoint = {
    symbolSize: 36,
    data: h.alarms.filter((m) => m.value !== null || m.limit !== null).map((m) => ({
      coord: [m.time_ms, m.value ?? m.limit], value: m.level ?? m.type, name: m.alarm_id,
      itemStyle: { color: m.type.includes("rtn") || m.type.includes("clear") ? "#2a7" : "#d00" },
    })),
  };
  const series = [{
    name: t("value"), type: "line", showSymbol: false, data, markLine, markPoint, lineStyle: { width: 1.5 },
    step: h.states ? "end" : undefined,
  }];
  if (!raw) {
    series.push({ name: "min", type: "line", showSymbol: false, lineStyle: { opacity: 0.3 },
      data: h.series.t_ms.map((tm, i) => [tm, h.series.min[i]]) });
    series.push({ name: "max", type: "line", showSymbol: false, lineStyle: { opacity: 0.3 },
      data: h.series.t_ms.map((tm, i) => [tm, h.series.max[i]]) });
  }
  let xMax = end;
  state.forecastShown = false;
  $("#forecast-note").textContent = "";
  if (f.active && f.eta_ms) {
    const last = data.filter((p) => p[1] !== null).at(-1);
    const from = last ?? [f.updated_ms ?? end, f.value];
    const target = f.limit ?? from[1];
    const lo = f.eta_low_ms ?? f.eta_ms, hi = f.eta_high_ms ?? f.eta_ms;
    const horizonMs = (f.horizon_s ?? 24 * 3600) * 1000; // the chance is over this horizon
    const farthest = Math.min(Math.max(hi, f.eta_ms), end + horizonMs);
    xMax = Math.max(end, farthest + 0.05 * (farthest - start));
    const minWidth = 0.01 * (xMax - start); // a certain ETA is still a visible band
    const mid = (lo + hi) / 2, half = Math.max(hi - lo, minWidth) / 2;
    series.push({
      name: t("forecast_series"), type: "line", showSymbol: false, data: [from, [f.eta_ms, target]],
      lineStyle: { type: "dotted", color: "#c060ff", width: 2 }, itemStyle: { color: "#c060ff" },
      markArea: {
        itemStyle: { color: "rgba(192, 96, 255, 0.25)" },
        label: { position: "insideBottom", color: "#d9a6ff" },
        data: [[{ name: t("eta_band"), xAxis: mid - half }, { xAxis: mid + half }]],
      },
    });
    const pct = (p) => (p === null || p === undefined ? "–" : Math.round(100 * p));
    const trend = f.trend_per_h === null || f.trend_per_h === undefined ? null
      : `${f.trend_per_h >= 0 ? "+" : ""}${f.trend_per_h.toPrecision(3)} ${h.unit}`;
    $("#forecast-note").textContent = t("forecast")({
      ...f, eta: shortTime(f.eta), eta_low: shortTime(f.eta_low), eta_high: shortTime(f.eta_high),
      pct: pct(f.probability), hours: f.horizon_s ? +(f.horizon_s / 3600).toFixed(1) : 24,
      basis: t("basis")[f.model] ?? f.model ?? "", trend,
    });
    state.forecastShown = true;
  } else if (f.forecast_enabled && f.current_probability !== null && f.current_probability !== undefined) {
    $("#forecast-note").textContent = t("outlook")({
      pct: Math.round(100 * f.current_probability), thr: Math.round(100 * (f.threshold ?? 0)),
      learned: t("learned")[f.learned] ?? f.learned ?? "",
    });
  }
  const shortView = RANGES[state.range] <= 24 * 3600e3; // the range is for this time of day and week
  if (shortView && f.normal_lo !== null && f.normal_lo !== undefined
      && f.normal_hi !== null && f.normal_hi !== undefined) {
    // what this sensor normally reads now (learned), behind the readings
    series.push({
      name: t("normal_band"), type: "line", data: [], showSymbol: false,
      markArea: {
        silent: true, itemStyle: { color: "rgba(80, 200, 120, 0.10)" },
        label: { position: "insideTopLeft", color: "#7c9" },
        data: [[{ name: t("normal_band"), yAxis: f.normal_lo }, { yAxis: f.normal_hi }]],
      },
    });
    state.normalShown = true;
  } else {
    state.normalShown = false;
  }
  const el = $("#trend");
  if (!state.chart) state.chart = echarts.init(el, "dark");
  // a live redraw keeps what the operator zoomed into; a new sensor or range starts whole
  const view = `${siteId}/${sensorId}/${state.range}`;
  const zoom = state.trendView === view ? state.chart.getOption()?.dataZoom?.[0] : null;
  const keep = zoom ? { start: zoom.start, end: zoom.end } : {};
  state.trendView = view;
  // a sensor with less history than the range: the axis starts at its first point, not squeezed right
  const first = data.find((p) => p[1] !== null)?.[0];
  const xMin = first !== undefined ? Math.max(start, first - 0.02 * (end - first)) : start;
  state.chart.setOption({
    animation: false,
    backgroundColor: "transparent",
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 60, right: 40, top: 40, bottom: 60 },
    xAxis: { type: "time", min: xMin, max: xMax },
    yAxis: h.states
      ? { type: "value", min: 0, max: h.states.length - 1, interval: 1,
          axisLabel: { formatter: (v) => stateName(h.states, v) } }
      : { type: "value", name: h.unit, scale: true },
    dataZoom: [{ type: "inside", ...keep }, { type: "slider", ...keep }],
    series,
  }, true);
  state.chartPoints = data.length;
  renderStateHistory(h);
  el.dataset.rendered = "true";
  el.dataset.points = String(data.length);
  state.viewTime.sensor = Date.now();
}

// ---- routing: #/alarms, #/sites, #/sites/{id}, #/sites/{id}/sensors/{sensor}, #/reports

function show(view) {
  for (const v of ["alarms-view", "sites-view", "sensor-view", "reports-view", "history-view"]) $("#" + v).hidden = v !== view;
  $("#tab-history").classList.toggle("active", view === "history-view");
  $("#tab-alarms").classList.toggle("active", view === "alarms-view");
  $("#tab-sites").classList.toggle("active", view === "sites-view" || view === "sensor-view");
  $("#tab-reports").classList.toggle("active", view === "reports-view");
}

async function route() {
  if (!state.user) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  state.route = parts;
  try {
    if (parts[0] === "sites" && parts[2] === "sensors" && parts[3]) {
      show("sensor-view");
      await renderTrend(parts[1], parts[3]);
      state.chart?.resize();
    } else if (parts[0] === "reports") {
      show("reports-view");
      await renderReports();
      state.viewTime.reports = Date.now();
    } else if (parts[0] === "history") {
      show("history-view");
      state.history ??= new HistoryView({ api, cell, fmt, duration, tn, strings: STRINGS[state.lang], onError: alertError });
      await state.history.show(STRINGS[state.lang]);
      state.viewTime.history = Date.now();
    } else if (parts[0] === "sites") {
      show("sites-view");
      // a site's page replaces the overview (the breadcrumb leads back to it)
      $("#site-detail").hidden = !parts[1];
      $("#overview").hidden = Boolean(parts[1]);
      if (parts[1]) await renderSite(parts[1]);
      else await renderSites();
    } else {
      show("alarms-view");
    }
  } catch (e) {
    if (e.status !== 401) alertError(e);
  }
}

async function refreshView() {
  const parts = state.route || [];
  if (parts[0] === "sites" && parts[2] === "sensors" && parts[3]) {
    // the trend appends what came in and redraws the forecast cone: every refresh on views up to
    // 24 h, every minute on longer ones (their points are 1-minute means)
    const long = RANGES[state.range] > 24 * 3600e3;
    if (!long || Date.now() - (state.viewTime.sensor ?? 0) > 60_000) await renderTrend(parts[1], parts[3]);
  } else if (parts[0] === "sites" || parts[0] === "reports") {
    await route();
  }
}

// ---- session

function showUser() {
  $("#user-name").textContent = state.user.display_name || state.user.username;
  $("#user-role").textContent = STRINGS[state.lang].role[state.user.role] ?? state.user.role;
}

function showLogin() {
  stopLive();
  state.user = null;
  state.alarms = [];
  state.lastRefreshMs = null;
  updateSound();
  $("#login-view").hidden = false;
  $("#app-view").hidden = true;
  $("#user-info").hidden = true;
  $("#logout-btn").hidden = true;
  $("#flood-banner").hidden = true;
  $("#error-banner").hidden = true;
  renderBanner();
  renderLastUpdate();
  renderLiveMode();
}

async function enter(user) {
  state.user = user;
  state.csrf = state.csrf || readCookie("hazmon_csrf");
  showUser();
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#user-info").hidden = false;
  $("#logout-btn").hidden = false;
  await loadNames();
  await Promise.all([refreshAlarms(), refreshFloods()]).catch(() => {});
  startLive();
  await route();
}

async function login(ev) {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const body = await api("/api/v1/auth/login", {
      method: "POST", body: { username: $("#username").value.trim(), password: $("#password").value },
    });
    state.csrf = body.csrf_token;
    $("#password").value = "";
    await enter(body.user);
  } catch (e) {
    $("#login-error").textContent = `${t("login_failed")}: ${e.message}`;
  }
}

async function logout() {
  try {
    await api("/api/v1/auth/logout", { method: "POST" });
  } catch (_) { /* the session may be gone already */ }
  state.csrf = null;
  showLogin();
}

async function boot() {
  const audio = $("#alarm-sound");
  audio.addEventListener("playing", () => { audio.dataset.playing = "true"; });
  audio.addEventListener("pause", () => { audio.dataset.playing = "false"; });
  $("#login-form").addEventListener("submit", login);
  $("#logout-btn").addEventListener("click", logout);
  $("#silence-btn").addEventListener("click", silence);
  $("#error-banner").addEventListener("click", () => { $("#error-banner").hidden = true; });
  $("#lang-btn").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("hazmon.lang", state.lang);
    loadNames().finally(applyLang);
  });
  $("#shelve-form").addEventListener("submit", submitShelve);
  $("#dispose-form").addEventListener("submit", submitDispose);
  $("#dispose-cancel").addEventListener("click", () => $("#dispose-dialog").close());
  $("#shelve-cancel").addEventListener("click", () => $("#shelve-dialog").close());
  for (const b of document.querySelectorAll("#zoom button")) {
    b.addEventListener("click", () => { state.range = b.dataset.range; route(); });
  }
  document.addEventListener("keydown", onKey);
  bindFilters();
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => state.chart?.resize());
  applyLang();
  try {
    const me = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
    if (me.ok) return enter((await me.json()).user);
  } catch (_) { /* offline: show the form */ }
  showLogin();
}

// for tests and the curious: read-only views of the console's state
window.hazmonConsole = {
  soundPlaying: () => !$("#alarm-sound").paused,
  tone: () => $("#alarm-sound").dataset.tone || null,
  alarms: () => state.alarms.map((a) => ({ ...a })),
  liveMode: () => state.live,
  sseAlarmEvents: () => state.sseAlarmEvents,
  liveModes: () => [...state.liveModes],
  lastRefreshMs: () => state.lastRefreshMs,
  chartPoints: () => state.chartPoints,
  forecastShown: () => state.forecastShown === true,
  normalShown: () => state.normalShown === true,
  lang: () => state.lang,
};

boot();

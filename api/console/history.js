// History and audit (issue 14 item 4): the alarm episodes of a period with filters and a CSV export
// (/api/v1/alarm-history), one alarm's journal (/api/v1/alarms/{id}/history) and who did what
// (/api/v1/audit). app.js routes #/history here and passes its helpers.

const $ = (sel) => document.querySelector(sel);
const HOUR = 3600e3;

// a datetime-local value in the browser's zone (the console runs in the control room's zone)
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}

const text = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "–");

export class HistoryView {
  constructor({ api, cell, fmt, duration, tn, strings, onError }) {
    Object.assign(this, { api, cell, fmt, duration, tn, onError });
    this.strings = strings;
    this.bound = false;
  }

  bind() {
    if (this.bound) return;
    this.bound = true;
    const now = Date.now();
    $("#h-from").value = localInput(now - 24 * HOUR);
    $("#h-to").value = localInput(now + 60e3);
    $("#history-filters").addEventListener("submit", (ev) => { ev.preventDefault(); this.load().catch(this.onError); });
    $("#audit-filters").addEventListener("submit", (ev) => { ev.preventDefault(); this.loadAudit().catch(this.onError); });
    for (const id of ["#h-site", "#h-priority", "#h-kind", "#h-from", "#h-to"]) {
      $(id).addEventListener("change", () => this.updateCsvLink());
    }
  }

  query() {
    const q = new URLSearchParams();
    q.set("from", String(new Date($("#h-from").value).getTime()));
    q.set("to", String(new Date($("#h-to").value).getTime()));
    const site = $("#h-site").value.trim(), pri = $("#h-priority").value, kind = $("#h-kind").value.trim().toUpperCase();
    if (site) q.set("site", site);
    if (pri) q.set("priority", pri);
    if (kind) q.set("kind", kind);
    return q;
  }

  updateCsvLink() {
    const q = this.query();
    q.set("format", "csv");
    q.set("limit", "20000");
    $("#h-csv").href = `/api/v1/alarm-history?${q}`;
  }

  async show(strings) {
    this.strings = strings;
    this.bind();
    await Promise.all([this.load(), this.loadAudit()]);
  }

  async load() {
    const S = this.strings;
    this.updateCsvLink();
    const body = await this.api(`/api/v1/alarm-history?${this.query()}`);
    const tbody = $("#history-rows");
    tbody.replaceChildren();
    const sites = new Map();
    for (const e of body.data) {
      sites.set(e.site, this.tn(e.site_name, e.site) || e.site);
      const tr = document.createElement("tr");
      tr.className = `history-row prio-${e.priority}`;
      tr.dataset.alarmId = e.alarm_id;
      tr.tabIndex = 0;
      this.cell(tr, text(e.raised), "time");
      this.cell(tr, S.priority[e.priority] ?? e.priority, "prio");
      this.cell(tr, this.tn(e.site_name, e.site) || e.site);
      this.cell(tr, e.source);
      this.cell(tr, this.tn(e.level, e.kind));
      this.cell(tr, `${this.fmt(e.value)} / ${this.fmt(e.limit)}`, "num");
      this.cell(tr, text(e.returned).slice(11) || "–", "time");
      this.cell(tr, e.duration_ms === null ? "–" : this.duration(e.duration_ms, S.units), "num");
      this.cell(tr, e.acked_by ? `${e.acked_by} ${text(e.acked).slice(11)}` : "–");
      this.cell(tr, text(e.cleared).slice(11) || "–", "time");
      const open = () => this.journal(e.alarm_id).catch(this.onError);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
      tbody.appendChild(tr);
    }
    const list = $("#h-sites");
    list.replaceChildren(...[...sites].map(([id, name]) => Object.assign(document.createElement("option"), { value: id, label: name })));
    $("#h-count").textContent = S.h_count(body.count);
    $("#history-table").dataset.loaded = "true";
    $("#history-table").dataset.count = String(body.count);
  }

  async journal(alarmId) {
    const S = this.strings;
    const [hist, audit] = await Promise.all([
      this.api(`/api/v1/alarms/${encodeURIComponent(alarmId)}/history`),
      this.api(`/api/v1/audit?alarm_id=${encodeURIComponent(alarmId)}`),
    ]);
    const rows = [
      ...hist.data.map((h) => ({ time_ms: h.time_ms, time: h.time, what: S.event[h.type] ?? h.type, user: h.details?.user ?? "", detail: h.details?.comment || h.details?.reason || "" })),
      ...audit.data.map((a) => ({ time_ms: a.time_ms, time: a.time, what: `${S.action[a.action] ?? a.action} (${S.outcome[a.outcome] ?? a.outcome})`, user: a.user, detail: [a.reason, a.error, a.details?.console, a.details?.action].filter(Boolean).join(" · ") })),
    ].sort((a, b) => a.time_ms - b.time_ms);
    const tbody = $("#journal-rows");
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = "journal-row";
      this.cell(tr, text(r.time), "time");
      this.cell(tr, r.what);
      this.cell(tr, r.user || "–");
      this.cell(tr, r.detail || "", "user-text"); // comments and reasons as people typed them
      tbody.appendChild(tr);
    }
    $("#journal-alarm").textContent = alarmId;
    $("#journal-box").hidden = false;
    $("#journal-box").dataset.alarmId = alarmId;
    $("#journal-box").scrollIntoView({ block: "nearest" });
  }

  async loadAudit() {
    const S = this.strings;
    const user = $("#a-user").value.trim();
    const body = await this.api(`/api/v1/audit?limit=200${user ? `&user=${encodeURIComponent(user)}` : ""}`);
    const tbody = $("#audit-rows");
    tbody.replaceChildren();
    for (const a of body.data) {
      const tr = document.createElement("tr");
      tr.className = `audit-row outcome-${a.outcome}`;
      this.cell(tr, text(a.time), "time");
      this.cell(tr, a.user);
      this.cell(tr, S.action[a.action] ?? a.action);
      this.cell(tr, S.outcome[a.outcome] ?? a.outcome);
      this.cell(tr, a.alarm_id || "–");
      this.cell(tr, [a.site, a.source].filter(Boolean).join(" "));
      this.cell(tr, [a.reason, a.error, a.details?.console, a.details?.action].filter(Boolean).join(" · "), "user-text");
      tbody.appendChild(tr);
    }
    $("#audit-table").dataset.loaded = "true";
  }
}

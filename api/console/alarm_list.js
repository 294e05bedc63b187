// The operator's alarm list, as data (issue 14 item 2): one row per sensor for its limit alarms
// (its H and HH, or L and LL, under the worst), filters, search and sort. Pure functions over the
// API's alarms; app.js draws the rows.

export const PRIORITY_RANK = { critical: 4, high: 3, medium: 2, low: 1 };
const LIMIT_KINDS = new Set(["HH", "H", "L", "LL"]);
const LEVEL_RANK = { HH: 2, LL: 2, H: 1, L: 1 };
const UNACKED = new Set(["UNACK", "RTN_UNACK"]);
const LISTED = new Set(["UNACK", "ACK", "RTN_UNACK"]);

export const needsAck = (a) => UNACKED.has(a.state);

// Alarms of one sensor's limits under one row: the worst shows, the others ride along (and an
// acknowledgement of the row acknowledges them all, as one SMS reply does)
export function groupBySensor(alarms) {
  const rows = [];
  const bySensor = new Map();
  for (const a of alarms) {
    // a shelved, suppressed or out-of-service alarm keeps its own (greyed) row: hiding it was a
    // decision about that alarm, and the sensor's other limit may still need the operator
    if (!LIMIT_KINDS.has(a.kind) || !LISTED.has(a.state)) {
      rows.push({ ...a, members: [a] });
      continue;
    }
    const side = a.kind.startsWith("H") ? "H" : "L";
    const key = `${a.site}\u0000${a.source}\u0000${side}`;
    const row = bySensor.get(key);
    if (!row) {
      const fresh = { ...a, members: [a] };
      bySensor.set(key, fresh);
      rows.push(fresh);
      continue;
    }
    row.members.push(a);
    const worse = (PRIORITY_RANK[a.priority] - PRIORITY_RANK[row.priority])
      || ((LEVEL_RANK[a.kind] ?? 0) - (LEVEL_RANK[row.kind] ?? 0));
    if (worse > 0) Object.assign(row, { ...a, members: row.members });
  }
  for (const row of rows) {
    row.unacked = row.members.filter(needsAck);
    row.oldestRaisedMs = Math.min(...row.members.map((m) => m.raised_ms ?? Infinity));
  }
  return rows;
}

export function matches(row, f) {
  if (f.site && row.site !== f.site) return false;
  if (f.city && row.city !== f.city) return false;
  if (f.priority && row.priority !== f.priority) return false;
  if (f.state && !row.members.some((m) => m.state === f.state)) return false;
  if (f.kind && !row.members.some((m) => m.kind === f.kind)) return false;
  if (f.text) {
    const q = f.text.trim().toLowerCase();
    const hay = [row.alarm_id, row.site, row.site_name, row.city, row.source, row.message, ...row.members.map((m) => m.alarm_id)]
      .filter(Boolean).join(" ").toLowerCase();
    if (q && !hay.includes(q)) return false;
  }
  return true;
}

const SORTS = {
  priority: (a, b) => (PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority]) || ((b.raised_ms ?? 0) - (a.raised_ms ?? 0)),
  raised: (a, b) => (b.raised_ms ?? 0) - (a.raised_ms ?? 0),
  site: (a, b) => (a.site_name || a.site).localeCompare(b.site_name || b.site, "zh") || a.source.localeCompare(b.source),
  state: (a, b) => a.state.localeCompare(b.state),
  source: (a, b) => a.source.localeCompare(b.source),
  duration: (a, b) => a.oldestRaisedMs - b.oldestRaisedMs,
};

export function sortRows(rows, key = "priority", descending = false) {
  const cmp = SORTS[key] ?? SORTS.priority;
  const out = [...rows].sort((a, b) => cmp(a, b) || a.alarm_id.localeCompare(b.alarm_id));
  return descending ? out.reverse() : out;
}

// "3 h 05 min", "12 min", "40 s": how long a row has been in alarm
export function duration(ms, units) {
  if (!(ms >= 0)) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} ${units.s}`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} ${units.min}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} ${units.h} ${String(m % 60).padStart(2, "0")} ${units.min}`;
  return `${Math.floor(h / 24)} ${units.d} ${h % 24} ${units.h}`;
}

// the choices the filters offer: what the list holds now
export function facets(alarms) {
  const uniq = (xs) => [...new Set(xs.filter(Boolean))].sort((a, b) => String(a).localeCompare(String(b), "zh"));
  return {
    sites: uniq(alarms.map((a) => a.site)).map((id) => ({ id, name: alarms.find((a) => a.site === id).site_name || id })),
    cities: uniq(alarms.map((a) => a.city)),
    kinds: uniq(alarms.map((a) => a.kind)),
  };
}

// The site page as a control-room mimic (issue 14 item 5): the site's sensors grouped by unit (the
// registry's `group`) or field device, each a card with its value, state, data age and a sparkline
// of the last hour; each device with its online state. Pure DOM building: app.js fetches the data.

const SVG = "http://www.w3.org/2000/svg";
const PRIORITY_RANK = { critical: 4, high: 3, medium: 2, low: 1 };
const LISTED = new Set(["UNACK", "ACK", "RTN_UNACK"]);

// an inline SVG line of the values (nulls are gaps), scaled to their own range
export function sparkline(values, { width = 160, height = 34 } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("aria-hidden", "true");
  const finite = (values || []).filter((v) => v !== null && Number.isFinite(v));
  svg.dataset.points = String(finite.length);
  if (finite.length === 0) return svg;
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const span = hi - lo || 1;
  const n = values.length;
  const x = (i) => (n === 1 ? width / 2 : (i * (width - 4)) / (n - 1) + 2);
  const y = (v) => height - 3 - ((v - lo) / span) * (height - 6);
  let d = "", pen = false, last = null;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) { pen = false; return; }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
    pen = true;
    last = [x(i), y(v)];
  });
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d.trim());
  path.setAttribute("class", "spark-line");
  svg.appendChild(path);
  if (last) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", last[0].toFixed(1));
    dot.setAttribute("cy", last[1].toFixed(1));
    dot.setAttribute("r", "2.5");
    dot.setAttribute("class", "spark-dot");
    svg.appendChild(dot);
  }
  return svg;
}

function worstAlarm(alarms) {
  return alarms.filter((a) => LISTED.has(a.state))
    .sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority])[0] ?? null;
}

// the groups of the page: a sensor's `group` (a unit: 罐区, 反应釜), else its device, else "—"
export function groupSensors(sensors) {
  const groups = new Map();
  for (const s of sensors) {
    const key = s.group ? `group:${s.group}` : s.device ? `device:${s.device}` : "none";
    if (!groups.has(key)) groups.set(key, { key, group: s.group, device: s.group ? null : s.device, sensors: [] });
    groups.get(key).sensors.push(s);
  }
  return [...groups.values()];
}

export function renderMimic(container, site, { devices, sparks, S, fmt, ageText, stateName, tn, link }) {
  container.replaceChildren();
  const byDevice = new Map((devices || []).map((d) => [d.device, d]));
  for (const g of groupSensors(site.sensors)) {
    const box = document.createElement("section");
    box.className = "sensor-group";
    box.dataset.group = g.key;
    const head = document.createElement("h3");
    head.textContent = g.group ? tn(g.group, g.key.slice(6)) : (g.device ? `${S.device} ${g.device}` : S.no_group);
    const devs = g.device ? [g.device] : [...new Set(g.sensors.map((s) => s.device).filter(Boolean))];
    for (const name of devs) {
      const d = byDevice.get(name);
      const badge = document.createElement("span");
      const status = d?.status ?? "unknown";
      badge.className = `device-badge device-${status}`;
      badge.dataset.device = name;
      badge.dataset.status = status;
      badge.textContent = `${g.device ? "" : `${name} `}${S.device_status[status] ?? status}`
        + (d?.silent_s !== null && d?.silent_s !== undefined ? ` · ${ageText(d.silent_s)}` : "");
      head.append(" ", badge);
    }
    box.appendChild(head);
    const grid = document.createElement("div");
    grid.className = "sensor-cards";
    for (const x of g.sensors) {
      const worst = worstAlarm(x.alarms);
      const card = document.createElement("a");
      card.className = `sensor-card ${worst ? `prio-${worst.priority} state-${worst.state}` : "normal"}`;
      card.href = link(x);
      card.dataset.sensorId = x.id;
      const top = document.createElement("div");
      top.className = "card-head";
      top.textContent = `${x.id} · ${tn(x.name, x.id)}`;
      const value = document.createElement("div");
      value.className = "card-value";
      value.textContent = x.states ? stateName(x.states, x.value) : `${fmt(x.value)} ${x.unit}`;
      const foot = document.createElement("div");
      foot.className = "card-foot";
      const lim = x.limits;
      const limits = ["ll", "l", "h", "hh"].filter((k) => lim[k] !== null).map((k) => `${k.toUpperCase()} ${lim[k]}`).join(" · ");
      const age = ageText(x.data_age_s);
      foot.textContent = [limits, age].filter(Boolean).join(" · ");
      if (x.data_age_s === null || x.data_age_s > 60) foot.classList.add("old");
      const status = document.createElement("div");
      status.className = "card-alarms";
      status.textContent = x.alarms.filter((a) => LISTED.has(a.state) || a.state === "SHELVED")
        .map((a) => `${tn(a.level, a.kind)} ${S.state[a.state] ?? a.state}`).join(", ") || S.ok;
      card.append(top, value, sparkline(sparks?.[x.id]), status, foot);
      grid.appendChild(card);
    }
    box.appendChild(grid);
    container.appendChild(box);
  }
}

// The regulator's map (一张图, issue 13 item 5): the sites in the user's scope on an offline map of
// their province, city and district, coloured by dynamic risk (/api/v1/risk) and sized by grade.
// Boundaries are vendored GeoJSON (vendor/geo/, scripts/vendor_geo.py): control rooms run on closed
// networks, so nothing is fetched from the internet. Clicking a region drills down
// province -> city -> district; clicking a marker opens the site; the breadcrumb goes back up.
/* global echarts */

const GEO_DIR = "vendor/geo/";
export const RISK_COLOURS = { red: "#e0262b", orange: "#f08a00", yellow: "#e6c700", blue: "#2c7be5" };
const RISK_ORDER = { blue: 0, yellow: 1, orange: 2, red: 3 };
// a tint of the worst colour for a region holding sites; regions without sites stay dark
const REGION_TINT = { red: "#5c1c1f", orange: "#5a3a12", yellow: "#4d4612", blue: "#1d3352" };
const SUFFIXES = ["壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "自治州", "地区", "省", "市", "区", "县", "盟"];
const MUNICIPALITIES = new Set(["110000", "120000", "310000", "500000"]);

// marker diameter in px: grade 一级 largest (a chemical site 1..4, a pond's class 1..5)
export function markerSize(row) {
  const sizes = row.kind === "tailings" ? [26, 22, 18, 14, 11] : [26, 20, 15, 11];
  return sizes[Math.min(Math.max((row.grade || sizes.length) - 1, 0), sizes.length - 1)];
}

function bare(name) {
  if (!name) return "";
  for (const s of SUFFIXES) {
    if (name.endsWith(s) && name.length > s.length + 1) return name.slice(0, -s.length);
  }
  return name;
}

let indexPromise = null;

// index.json: every area with its level and parent; name lookups for the registry's names
export function loadIndex() {
  indexPromise ??= fetch(GEO_DIR + "index.json")
    .then((r) => { if (!r.ok) throw new Error(`map index: HTTP ${r.status}`); return r.json(); })
    .then(({ areas }) => {
      const byCode = new Map(areas.map((a) => [a.adcode, a]));
      const children = new Map();
      for (const a of areas) {
        if (!a.parent) continue;
        if (!children.has(a.parent)) children.set(a.parent, []);
        children.get(a.parent).push(a);
      }
      const provinces = areas.filter((a) => a.level === "province");
      return { byCode, children, provinces };
    });
  return indexPromise;
}

function findChild(idx, parent, name, level) {
  if (!name || !parent) return null;
  const kids = idx.children.get(parent) || [];
  return kids.find((a) => a.name === name && (!level || a.level === level))
    || kids.find((a) => bare(a.name) === bare(name) && (!level || a.level === level)) || null;
}

// A site's province, city and district adcodes from the names the registry gives (null if unknown)
export function placeSite(idx, row) {
  let province = idx.provinces.find((p) => p.name === row.province || bare(p.name) === bare(row.province)) || null;
  let city = null;
  if (province && MUNICIPALITIES.has(province.adcode)) {
    city = province;
  } else if (province) {
    city = findChild(idx, province.adcode, row.city, "city");
  } else if (row.city) {
    for (const p of idx.provinces) {
      if (MUNICIPALITIES.has(p.adcode) && bare(p.name) === bare(row.city)) { province = city = p; break; }
      const c = findChild(idx, p.adcode, row.city, "city");
      if (c) { province = p; city = c; break; }
    }
  }
  const district = city ? findChild(idx, city.adcode, row.district, "district") : null;
  return { province: province?.adcode ?? null, city: city?.adcode ?? null, district: district?.adcode ?? null };
}

// the chain of areas from China down to `code`
function chain(idx, code) {
  const out = [];
  // at most country, province, city, district: a malformed index cannot loop
  for (let a = idx.byCode.get(code); a && out.length < 4; a = a.parent ? idx.byCode.get(a.parent) : null) {
    out.unshift(a);
  }
  return out;
}

const geoCache = new Map();

async function geoJson(code) {
  if (!geoCache.has(code)) {
    geoCache.set(code, fetch(GEO_DIR + code + ".json").then((r) => {
      if (!r.ok) throw new Error(`map ${code}: HTTP ${r.status}`);
      return r.json();
    }).then((g) => { echarts.registerMap("hz-" + code, g); return g; }));
  }
  try {
    return await geoCache.get(code);
  } catch (e) {
    geoCache.delete(code);
    throw e;
  }
}

// the area shown for `code`: its own map, or for a district its city's map zoomed onto it
function mapCodeOf(idx, code) {
  const a = idx.byCode.get(code);
  return a && a.level === "district" ? a.parent : code;
}

export class RiskMap {
  constructor(el, crumbs, { onSite, onArea, strings, tn = (x) => x, reasonOf = (r) => r.reasons?.[0] ?? "" }) {
    this.el = el;
    this.crumbs = crumbs;
    this.onSite = onSite;
    this.tn = tn; // a registry or map name in the console's language
    this.reasonOf = reasonOf; // a site's main risk reason in the console's language
    this.onArea = onArea; // (area, the names of its regions) after each drawing, for the summary
    this.strings = strings;
    this.chart = null;
    this.area = null; // the adcode drilled into (null: the scope's own area)
    this.rows = [];
    this.places = new Map(); // site -> {province, city, district}
    this.coords = new Map(); // site -> [lon, lat] on the map
    this.geo = null;
  }

  // the smallest area that holds every site in scope, but never below a city: a city regulator
  // opens on their city's districts, a provincial one on their province's cities
  homeArea() {
    const chains = this.rows.map((r) => this.places.get(r.site)).filter((p) => p && p.province);
    if (chains.length === 0) return "100000";
    const same = (k) => chains.every((p) => p[k] && p[k] === chains[0][k]);
    if (same("province") && same("city")) return chains[0].city;
    if (same("province")) return chains[0].province;
    return "100000";
  }

  async update(rows, strings) {
    this.strings = strings ?? this.strings;
    const idx = await loadIndex();
    this.rows = rows;
    this.places = new Map(rows.map((r) => [r.site, placeSite(idx, r)]));
    await this.render();
  }

  async drill(code) {
    this.area = code;
    await this.render();
  }

  inArea(idx, place, code) {
    if (!place) return false;
    if (code === "100000") return Boolean(place.province);
    return place.province === code || place.city === code || place.district === code;
  }

  async render() {
    const idx = await loadIndex();
    const code = this.area ?? this.homeArea();
    const mapCode = mapCodeOf(idx, code);
    const geo = await geoJson(mapCode);
    if (this.area !== null && (this.area ?? this.homeArea()) !== code) return; // drilled meanwhile
    const featureByCode = new Map(geo.features.map((f) => [f.properties.adcode, f]));
    const shown = this.rows.filter((r) => this.inArea(idx, this.places.get(r.site), code));
    // where each site sits: its own coordinates, else the centre of its district (or city),
    // spread on a small spiral so that sites of one district do not hide each other
    const perCentre = new Map();
    for (const r of shown) {
      let lonLat = r.location ? [r.location.lon, r.location.lat] : null;
      if (!lonLat) {
        const p = this.places.get(r.site);
        const cp = (idx.byCode.get(p.district) || idx.byCode.get(p.city) || idx.byCode.get(p.province))?.cp;
        if (cp) {
          const k = cp.join(",");
          const n = perCentre.get(k) ?? 0;
          perCentre.set(k, n + 1);
          const angle = n * 2.39996, radius = n === 0 ? 0 : 0.02 * Math.sqrt(n);
          lonLat = [cp[0] + radius * Math.cos(angle), cp[1] + radius * Math.sin(angle)];
        }
      }
      this.coords.set(r.site, lonLat);
    }
    // each child region's worst colour and number of sites
    const worst = new Map(), count = new Map();
    for (const r of shown) {
      const p = this.places.get(r.site);
      const child = [p.province, p.city, p.district].find((c) => c && idx.byCode.get(c)?.parent === mapCode);
      if (!child) continue;
      count.set(child, (count.get(child) ?? 0) + 1);
      if (!worst.has(child) || RISK_ORDER[r.colour] > RISK_ORDER[worst.get(child)]) worst.set(child, r.colour);
    }
    const s = this.strings;
    const regions = geo.features.map((f) => {
      const c = f.properties.adcode;
      const tint = worst.has(c) ? REGION_TINT[worst.get(c)] : "#20262f";
      return { name: f.properties.name, itemStyle: { areaColor: tint } };
    });
    const focus = idx.byCode.get(code);
    const zoomOnto = focus && focus.level === "district" ? featureByCode.get(code) : null;
    const data = shown
      .filter((r) => this.coords.get(r.site))
      .map((r) => ({
        name: this.tn(r.name, r.site),
        site: r.site,
        value: [...this.coords.get(r.site), r.score],
        colour: r.colour,
        symbolSize: markerSize(r),
        itemStyle: { color: RISK_COLOURS[r.colour] ?? "#888", borderColor: "#fff", borderWidth: 1 },
        reason: this.reasonOf(r),
      }));
    if (!this.chart) {
      this.chart = echarts.init(this.el, null, { renderer: "canvas" });
      this.chart.on("click", (p) => this.onClick(p));
      window.addEventListener("resize", () => this.chart?.resize());
    }
    this.chart.setOption({
      backgroundColor: "transparent",
      animation: false, // a control room wants the state now, and a marker where it is drawn
      tooltip: {
        trigger: "item",
        formatter: (p) => p.componentType === "series"
          ? `${p.data.name}<br>${s.risk[p.data.colour] ?? p.data.colour} · ${s.map_score} ${p.data.value[2]}<br>${p.data.reason}`
          : `${p.name}${count.get(this.codeOfRegion(idx, mapCode, p.name)) ? ` · ${count.get(this.codeOfRegion(idx, mapCode, p.name))} ${s.map_sites}` : ""}`,
      },
      geo: {
        map: "hz-" + mapCode,
        roam: true,
        zoom: zoomOnto ? 3 : 1.1,
        center: zoomOnto ? zoomOnto.properties.cp : undefined,
        label: { show: true, color: "#9aa4b2", fontSize: 11, formatter: (p) => this.tn(p.name, "") },
        itemStyle: { areaColor: "#20262f", borderColor: "#5b6676", borderWidth: 1 },
        emphasis: { itemStyle: { areaColor: "#334055" }, label: { color: "#fff" } },
        select: { disabled: true },
        regions,
      },
      series: [{
        id: "sites",
        type: "scatter",
        coordinateSystem: "geo",
        data,
        symbolSize: (_v, p) => p.data.symbolSize,
        zlevel: 2,
        emphasis: { scale: 1.4 },
      }],
    }, { replaceMerge: ["series", "geo"] });
    this.el.dataset.area = code;
    this.el.dataset.level = focus?.level ?? "country";
    this.el.dataset.markers = String(data.length);
    this.el.dataset.colours = JSON.stringify(Object.fromEntries(data.map((d) => [d.site, d.colour])));
    this.el.dataset.rendered = String(Date.now());
    this.renderCrumbs(idx, code);
    if (this.onArea) this.onArea(focus ?? { adcode: "100000", name: "", level: "country" }, geo.features.map((f) => f.properties.name));
  }

  codeOfRegion(idx, mapCode, name) {
    return (idx.children.get(mapCode) || []).find((a) => a.name === name)?.adcode ?? null;
  }

  async onClick(p) {
    if (p.componentType === "series" && p.data?.site) {
      this.onSite(p.data.site);
      return;
    }
    if (p.componentType !== "geo") return;
    const idx = await loadIndex();
    const mapCode = mapCodeOf(idx, this.area ?? this.homeArea());
    const code = this.codeOfRegion(idx, mapCode, p.name);
    if (code) await this.drill(code);
  }

  renderCrumbs(idx, code) {
    const nav = this.crumbs;
    nav.replaceChildren();
    for (const a of chain(idx, code)) {
      if (nav.childElementCount) nav.append(" › ");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "crumb";
      b.dataset.adcode = a.adcode;
      b.textContent = a.adcode === "100000" ? this.strings.map_china : this.tn(a.name, a.adcode);
      b.disabled = a.adcode === code;
      b.addEventListener("click", () => this.drill(a.adcode));
      nav.append(b);
    }
  }

  // where a site's marker is on the screen (CSS px inside the map element), for tests and focus
  markerPixel(siteId) {
    const c = this.coords.get(siteId);
    return c && this.chart ? this.chart.convertToPixel({ geoIndex: 0 }, c) : null;
  }

  // a point inside a region, clear of every marker (a click there drills down, not into a site)
  regionPixel(name) {
    const region = this.chart?.getModel().getComponent("geo").coordinateSystem.getRegion(name);
    if (!region) return null;
    const rect = region.getBoundingRect();
    const markers = [...this.coords.values()].filter(Boolean).map((c) => this.chart.convertToPixel({ geoIndex: 0 }, c));
    let best = null, bestGap = -1;
    for (let i = 1; i < 12; i++) {
      for (let j = 1; j < 12; j++) {
        const c = [rect.x + (rect.width * i) / 12, rect.y + (rect.height * j) / 12];
        if (!region.contain(c)) continue;
        const px = this.chart.convertToPixel({ geoIndex: 0 }, c);
        const gap = Math.min(Infinity, ...markers.map((m) => Math.hypot(m[0] - px[0], m[1] - px[1])));
        if (gap > bestGap) { best = px; bestGap = gap; }
      }
    }
    return best;
  }

  resize() { this.chart?.resize(); }
}

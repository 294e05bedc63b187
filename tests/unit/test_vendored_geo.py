"""The console's offline map (api/console/vendor/geo/, scripts/vendor_geo.py): every area the index
names has its map where the console will ask for it, and the registry's names are found."""

from __future__ import annotations

import json
from pathlib import Path

GEO = Path(__file__).resolve().parents[2] / "api" / "console" / "vendor" / "geo"


def test_every_province_and_city_has_its_map_and_the_features_carry_their_adcodes():
    areas = json.loads((GEO / "index.json").read_text(encoding="utf-8"))["areas"]
    by_code = {a["adcode"]: a for a in areas}
    provinces = [a for a in areas if a["level"] == "province"]
    assert len(provinces) == 34
    assert all((GEO / f"{p['adcode']}.json").exists() for p in provinces)
    cities_with_districts = {a["parent"] for a in areas if a["level"] == "district"}
    assert all((GEO / f"{c}.json").exists() for c in cities_with_districts)
    guangdong = json.loads((GEO / "440000.json").read_text(encoding="utf-8"))
    names = {f["properties"]["name"]: f["properties"]["adcode"] for f in guangdong["features"]}
    assert names["江门市"] == "440700" and names["韶关市"] == "440200" and len(names) == 21
    jiangmen = {a["name"] for a in areas if a["parent"] == "440700"}
    assert {"蓬江区", "江海区", "新会区", "台山市"} <= jiangmen
    assert all(by_code[a["parent"]]["level"] in ("country", "province", "city") for a in areas if a["parent"])
    assert all(len(a["cp"]) == 2 for a in areas if a["level"] != "country")

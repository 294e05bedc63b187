"""The levels a report covers: one site, or the places of the registry (a light module: the
settings check HAZMON_REPORT_LEVELS against it without loading the report model)."""

from __future__ import annotations

from typing import Literal

Level = Literal["site", "district", "city", "province", "park", "all"]
LEVELS: tuple[Level, ...] = ("site", "district", "city", "province", "park", "all")
LEVEL_ZH = {"site": "站点", "district": "区县", "city": "市", "province": "省", "park": "园区", "all": "全部"}

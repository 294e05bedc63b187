"""The project's own docs match the code: every HAZMON_* variable, and the README's package table.

People configure hazmon from the README and docs/contracts.md alone, so a variable the code reads
but the docs leave out, or one the docs name but the code no longer reads, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from hazmon.config import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CONTRACTS = REPO / "docs" / "contracts.md"
DESIGN = REPO / "docs" / "design.md"
PRODUCT_PACKAGES = ("alerts", "api", "ingest", "sensors", "simulators", "hazmon")
# read only by the crash tests (hazmon/faults.py); documented in contracts.md, not in the README
TEST_ONLY = {"HAZMON_CRASH_AT"}

_VAR = r"HAZMON_[A-Z0-9_]*[A-Z0-9]"
# os.environ.get("HAZMON_X"), os.environ["HAZMON_X"], os.getenv("HAZMON_X"), environ.get('HAZMON_X', ...)
_READ = re.compile(rf"""(?:environ\.get|environ\[|getenv)\(?\s*["']({_VAR})["']""")


def settings_variables() -> set[str]:
    """The variables pydantic-settings reads: the env prefix plus each field name, upper-cased."""
    prefix = Settings.model_config["env_prefix"]
    assert prefix == "HAZMON_"
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def literal_reads() -> dict[str, list[str]]:
    """HAZMON_* variables the product code reads by name from the environment, with where."""
    found: dict[str, list[str]] = {}
    for package in PRODUCT_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for name in _READ.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


def code_variables() -> set[str]:
    return settings_variables() | set(literal_reads())


def section(text: str, number: int) -> str:
    match = re.search(rf"^## {number}\..*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section {number}"
    return match.group(0)


def documented(text: str) -> set[str]:
    """Variables named in the text, with a table cell's shorthand (`HAZMON_SMPP_HOST` / `_PORT`) expanded."""
    known = code_variables()
    names = set(re.findall(_VAR, text))
    for line in text.splitlines():
        for cell in line.split("|"):
            full = re.findall(rf"`({_VAR})`", cell)
            if not full:
                continue
            parts = full[0].split("_")
            for suffix in re.findall(r"`(_[A-Z0-9_]+)`", cell):
                # the shorthand replaces the tail of the first name: try every split of it
                expansions = {"_".join(parts[:i]) + suffix for i in range(2, len(parts) + 1)}
                hits = expansions & known
                names |= hits or {f"{full[0]}?{suffix}"}  # an unknown one is reported below
    return names


def test_the_scan_finds_the_settings_and_the_literal_reads():
    variables = code_variables()
    # a field of Settings, one with an underscore inside, and the simulator's own read (simulators/cli.py)
    assert {"HAZMON_REGISTRY", "HAZMON_SMS_IN_DOUBT_GRACE_S", "HAZMON_MQTT_URL"} <= variables
    assert "simulators/cli.py" in literal_reads()["HAZMON_MQTT_URL"]
    assert len(settings_variables()) == len(Settings.model_fields) > 40


def test_every_variable_the_code_reads_is_in_contracts_section_6():
    docs = documented(section(CONTRACTS.read_text(encoding="utf-8"), 6))
    missing = sorted(code_variables() - docs)
    assert not missing, f"read by the code but not in docs/contracts.md §6: {missing}"


def test_every_variable_the_docs_name_is_read_by_the_code():
    known = code_variables()
    for path in (README, CONTRACTS, DESIGN):
        stale = sorted(documented(path.read_text(encoding="utf-8")) - known)
        assert not stale, f"{path.name} names variables the code does not read: {stale}"


def test_the_readme_configuration_tables_give_every_variable_but_the_test_only_ones():
    text = README.read_text(encoding="utf-8")
    config = re.search(r"^## Configuration\n.*?(?=^## )", text, flags=re.M | re.S)
    assert config
    missing = sorted(code_variables() - TEST_ONLY - documented(config.group(0)))
    assert not missing, f"read by the code but not in the README's Configuration: {missing}"


def package_rows(text: str) -> dict[str, str]:
    """`| `pkg/` | what it owns |` rows of a markdown table, keyed by the package name."""
    return dict(re.findall(r"^\| `([a-z_]+)/` \|(.*)$", text, flags=re.M))


def top_level_packages() -> set[str]:
    return {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}


def test_the_readme_package_table_lists_exactly_the_top_level_packages():
    assert set(PRODUCT_PACKAGES) == top_level_packages()
    rows = package_rows(README.read_text(encoding="utf-8"))
    assert set(rows) == top_level_packages()


def test_the_design_package_table_covers_every_top_level_package():
    rows = package_rows(DESIGN.read_text(encoding="utf-8"))
    assert top_level_packages() <= set(rows)


def test_every_module_and_folder_the_package_tables_name_exists_in_that_package():
    checked = 0
    for path in (README, DESIGN):
        for package, row in package_rows(path.read_text(encoding="utf-8")).items():
            root = REPO / package
            assert root.is_dir(), f"{path.name}: no folder {package}/"
            names = re.findall(r"`([A-Za-z0-9_./{}-]+(?:\.py|/))`", row)
            for name in names:
                # a module may move inside its package (alerts/engine/...): found anywhere under it
                target = name.rstrip("/").removeprefix(f"{package}/")
                if "{" in target:  # routers/{sites,alarms}.py style
                    continue
                hits = [p for p in root.rglob(Path(target).name) if p.as_posix().endswith(target)]
                assert hits, f"{path.name}: the {package}/ row names {name}, not in the tree"
                checked += 1
    assert checked > 50  # the rows name the modules (alerts/ alone names over 20)


def _walk(routes) -> set[str]:
    from fastapi.routing import APIRoute

    found = set()
    for route in routes:
        if isinstance(route, APIRoute):
            found |= {f"{method} {route.path}" for method in route.methods - {"HEAD"}}
        elif hasattr(route, "original_router"):  # FastAPI >= 0.120 keeps included routers whole
            found |= _walk(route.original_router.routes)
    return found


def app_routes() -> set[str]:
    """`METHOD /path` of every route the app serves, the ones left out of OpenAPI included."""
    from tests.support.api_rig import shared_app

    app = shared_app()
    routes = _walk(app.routes)
    in_openapi = {f"{m.upper()} {path}" for path, item in app.openapi()["paths"].items() for m in item}
    assert in_openapi <= routes  # the walk misses nothing the OpenAPI document shows
    return routes


def test_every_route_of_the_app_is_in_contracts_section_7():
    routes = app_routes()
    assert {"GET /livez", "GET /api/v1/audit", "POST /api/v1/alarms/{alarm_id}/ack"} <= routes
    docs = section(CONTRACTS.read_text(encoding="utf-8"), 7)
    missing = sorted(r for r in routes if f"`{r}`" not in docs)
    assert not missing, f"served but not in docs/contracts.md §7: {missing}"


def _normal(route: str) -> str:
    """`GET /api/v1/alarms/{alarm_id}?x=1` -> `GET /api/v1/alarms/{}`: the docs name parameters freely."""
    return re.sub(r"\{[^}]*\}", "{}", route.split("?")[0])


def test_every_route_the_docs_name_is_served():
    served = {_normal(r) for r in app_routes()}
    checked = 0
    for path in (README, CONTRACTS):
        for route in re.findall(
            r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`\s]*)`", path.read_text(encoding="utf-8")
        ):
            assert _normal(route) in served, f"{path.name} names {route}, which the app does not serve"
            checked += 1
    assert checked > 40


def _body_fields(cell: str) -> set[str]:
    """`{reason (1-500, not blank), minutes (> 0, ≤ 1440)}` -> {"reason", "minutes"}."""
    match = re.search(r"\{(.*)\}", cell)
    assert match, cell
    flat = match.group(1)
    while "(" in flat:  # drop the notes in parentheses, innermost first
        flat = re.sub(r"\([^()]*\)", "", flat)
    return {part.strip() for part in flat.split(",")}


def test_every_request_body_in_contracts_section_7_has_the_fields_of_its_schema():
    from tests.support.api_rig import shared_app

    spec = shared_app().openapi()
    schemas = spec["components"]["schemas"]
    rows = {
        m.group(1): m.group(2).split("|")[1]
        for m in re.finditer(
            r"^\| `((?:POST|PATCH|PUT) /[^`]+)` \|(.*)$", section(CONTRACTS.read_text("utf-8"), 7), re.M
        )
    }
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" not in ref:
                continue
            fields = set(schemas[ref["$ref"].rsplit("/", 1)[1]]["properties"])
            route = f"{method.upper()} {path}"
            assert route in rows, f"{route} takes a body; contracts §7 has no row for it"
            assert _body_fields(rows[route]) == fields, f"{route}: contracts §7 says {rows[route].strip()}"
            checked += 1
    assert checked >= 10  # seven alarm steps, login, tokens, users

"""The container deployment (docker-compose.yml, Dockerfile, deploy/mosquitto) is consistent.

No Docker engine is needed: the files are parsed and cross-checked against each other, the repo
and the configuration contract (docs/contracts.md §6), so a broken path, a missing variable or a
broker setting that drops readings fails here rather than on a user's `docker compose up`.
Compose's variables are filled in as `docker compose config` would, with stand-ins for the
secrets deploy/make-secrets.sh generates; the real script, broker and database run in
tests/integration/test_deploy_*.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from hazmon.config import Settings
from ingest.influx import RAW_RP, ROLLUP_RP
from tests.support.compose import VARIABLE, interpolate_tree

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_DIR = COMPOSE_FILE.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
MAKE_SECRETS = REPO / "deploy" / "make-secrets.sh"
SECRETS_DIR = REPO / "deploy" / "secrets"  # generated, never committed
INFLUX_INIT = REPO / "deploy" / "influxdb" / "init"
GITIGNORE = REPO / ".gitignore"
CONTRACTS = REPO / "docs" / "contracts.md"  # the project's own record (../shared is a read-only briefing)

SERVICES = {"mosquitto", "influxdb", "hazmon", "simulator"}
# the variables a container deployment must set: their defaults (localhost, ./var) are wrong in a container
DEPLOYMENT_ENV_VARS = {
    "HAZMON_REGISTRY",
    "HAZMON_MQTT_URL",
    "HAZMON_INFLUX_URL",
    "HAZMON_INFLUX_DB",
    "HAZMON_DATA_DIR",
    "HAZMON_HTTP_HOST",
    "HAZMON_HTTP_PORT",
    # its own broker and database users (the stack allows no anonymous client)
    "HAZMON_EVENTS_MQTT_URL",
    "HAZMON_INFLUX_USERNAME",
    "HAZMON_INFLUX_PASSWORD",
}


def compose_variables() -> list[tuple[str, str | None, str | None]]:
    """(name, kind, argument) of every ${...} in docker-compose.yml; kind "?" (required) or "-"."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    return [m.groups() for m in VARIABLE.finditer(text) if m.group(0) != "$$"]


# what deploy/make-secrets.sh writes into .env: a distinct stand-in per variable
GENERATED = {name: f"{name.lower()}0generated" for name, _, _ in compose_variables()}


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as written, variables and all."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    """The services as compose runs them, with the generated secrets filled in."""
    return interpolate_tree(compose, GENERATED)["services"]


def env_of(service: dict) -> dict[str, str]:
    """`environment:` as a dict, from either the mapping or the `KEY=VALUE` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def port_mappings(service: dict) -> list[tuple[int, int]]:
    """(published host port, container port) pairs, short or long syntax."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((int(p["published"]), int(p["target"])))
            continue
        spec = str(p).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:  # container port only: the host port is random
            continue
        out.append((int(parts[-2]), int(parts[-1])))
    return out


def volume_mounts(service: dict) -> list[dict]:
    """Each mount as {type, source, target, read_only}, short or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append(
                {
                    "type": v.get("type", "volume"),
                    "source": v.get("source"),
                    "target": v["target"],
                    "read_only": bool(v.get("read_only", False)),
                }
            )
            continue
        parts = v.split(":")
        if len(parts) == 1:  # anonymous volume
            out.append({"type": "volume", "source": None, "target": parts[0], "read_only": False})
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")})
    return out


def depends_on(service: dict) -> dict[str, str]:
    """{dependency: condition}; the list form means service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def build_of(service: dict) -> tuple[Path, Path] | None:
    """(context dir, Dockerfile) of a service's build, resolved against the compose file."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_DIR / build.get("context", ".")).resolve()
    return context, (context / build.get("dockerfile", "Dockerfile")).resolve()


def is_inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO)


def mosquitto_settings() -> dict[str, list[str]]:
    """mosquitto.conf as {option: [values in file order]}, comments dropped."""
    settings: dict[str, list[str]] = {}
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value.strip())
    return settings


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        if line:
            word, _, args = line.partition(" ")
            instructions.append((word.upper(), args.strip()))
    return instructions


def copy_instructions() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD that reads the build context (not --from=)."""
    out = []
    for word, args in dockerfile_instructions():
        if word not in ("COPY", "ADD"):
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        out.append((paths[:-1], paths[-1]))
    return out


def dockerfile_workdir_of_last_stage() -> PurePosixPath:
    workdir = PurePosixPath("/")
    for word, args in dockerfile_instructions():
        if word == "FROM":
            workdir = PurePosixPath("/")
        elif word == "WORKDIR":
            workdir = workdir / args
    return workdir


def last_stage_copies() -> list[tuple[list[str], PurePosixPath]]:
    """COPY sources and absolute destinations in the final image (the last FROM stage)."""
    copies: list[tuple[list[str], PurePosixPath]] = []
    workdir = PurePosixPath("/")
    for word, args in dockerfile_instructions():
        if word == "FROM":
            copies, workdir = [], PurePosixPath("/")
        elif word == "WORKDIR":
            workdir = workdir / args
        elif word in ("COPY", "ADD"):
            parts = json.loads(args) if args.startswith("[") else shlex.split(args)
            if any(p.startswith("--from=") for p in parts):
                continue
            paths = [p for p in parts if not p.startswith("--")]
            copies.append((paths[:-1], workdir / paths[-1]))
    return copies


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def is_dockerignored(rel_path: str, patterns: list[str]) -> bool:
    """Approximate .dockerignore matching: a path is out if it or a parent folder matches the
    last matching pattern and that pattern is not a `!` exception."""
    candidates = [
        str(PurePosixPath(*PurePosixPath(rel_path).parts[: i + 1]))
        for i in range(len(PurePosixPath(rel_path).parts))
    ]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        pats = {pat, pat.removeprefix("**/")} if pat.startswith("**/") else {pat}
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in pats):
            ignored = not negate
    return ignored


def path_in_image_from_repo(container_path: str) -> Path | None:
    """The repo path that a final-stage COPY puts at `container_path`, if any."""
    target = PurePosixPath(container_path)
    for sources, dest in last_stage_copies():
        for src in sources:
            # `COPY dir ./dir` and `COPY file ./dir/` both land at dest (or dest/name)
            for landed in (dest, dest / PurePosixPath(src).name):
                if target == landed:
                    return REPO / src
                if target.is_relative_to(landed) and (REPO / src).is_dir():
                    return REPO / src / target.relative_to(landed)
    return None


def script_users() -> dict[str, str]:
    """The broker user names deploy/make-secrets.sh creates (INGEST_USER=hazmon-ingest, ...)."""
    return dict(re.findall(r"^(\w+_USER)=(\S+)", MAKE_SECRETS.read_text(encoding="utf-8"), flags=re.M))


def listener_blocks(text: str) -> list[dict[str, list[str]]]:
    """Each `listener` of a mosquitto.conf with the options that follow it (listener options)."""
    blocks: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "listener":
            blocks.append({})
        if blocks and key and not key.startswith("#"):
            blocks[-1].setdefault(key, []).append(value.strip())
    return blocks


def documented_env_vars() -> set[str]:
    """Every HAZMON_* variable docs/contracts.md §6 documents."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = re.search(r"^## 6\..*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, f"{CONTRACTS}: no section 6 (configuration)"
    return set(re.findall(r"`(HAZMON_[A-Z0-9_]+)`", section.group(0)))


# ---------------------------------------------------------------------------------- compose


def test_compose_file_uses_the_compose_spec_without_a_version_key(compose):
    assert "version" not in compose
    top_level = {k for k in compose if not k.startswith("x-")}  # x-* are extension fields
    assert top_level <= {"services", "volumes", "networks", "configs", "secrets", "name", "include"}


def test_compose_defines_broker_influxdb_service_and_simulator(services):
    assert set(services) == SERVICES
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["influxdb"]["image"].startswith("influxdb:1.8")


def test_simulator_starts_only_with_the_simulator_profile(services):
    assert services["simulator"].get("profiles") == ["simulator"]
    for name in SERVICES - {"simulator"}:
        assert not services[name].get("profiles"), f"{name} would not start with plain `up`"


@pytest.mark.parametrize(("service", "port"), [("mosquitto", 1883), ("influxdb", 8086), ("hazmon", 8000)])
def test_service_port_is_published_on_the_same_host_port(services, service, port):
    assert (port, port) in port_mappings(services[service])


def test_every_named_volume_used_is_declared_at_top_level(compose, services):
    declared = set(compose.get("volumes") or {})
    used = {
        m["source"]
        for svc in services.values()
        for m in volume_mounts(svc)
        if m["type"] == "volume" and m["source"]
    }
    assert used, "expected named volumes for broker, database and hazmon state"
    assert used <= declared, f"undeclared named volumes: {sorted(used - declared)}"


def test_state_of_every_server_lives_on_a_named_volume(services):
    targets = {
        name: {m["target"] for m in volume_mounts(svc) if m["type"] == "volume"}
        for name, svc in services.items()
    }
    assert "/mosquitto/data" in targets["mosquitto"]
    assert "/var/lib/influxdb" in targets["influxdb"]
    assert env_of(services["hazmon"])["HAZMON_DATA_DIR"] in targets["hazmon"]


def test_every_bind_mounted_host_path_exists_in_the_repo_or_is_generated(services):
    binds = [(name, m) for name, svc in services.items() for m in volume_mounts(svc) if m["type"] == "bind"]
    assert binds, "expected at least the mosquitto.conf bind mount"
    for name, mount in binds:
        host = (COMPOSE_DIR / mount["source"]).resolve()
        assert is_inside_repo(host), f"{name}: {mount['source']} is outside the repo"
        if host.is_relative_to(SECRETS_DIR):  # made by deploy/make-secrets.sh, not in a checkout
            assert mount["read_only"], f"{name}: {mount['source']} must be mounted read-only"
            continue
        assert host.exists(), f"{name}: bind source {mount['source']} does not exist"


def test_generated_files_are_long_syntax_binds_that_fail_when_missing(compose):
    # the short syntax makes Docker create an empty directory in place of a missing file
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            source = v.get("source", "") if isinstance(v, dict) else v.split(":")[0]
            if (COMPOSE_DIR / source).resolve().is_relative_to(SECRETS_DIR):
                assert isinstance(v, dict), f"{name}: {source} in short syntax"
                assert v.get("bind", {}).get("create_host_path") is False, f"{name}: {source}"


def test_broker_runs_the_repo_mosquitto_conf_read_only(services):
    mounts = {m["target"]: m for m in volume_mounts(services["mosquitto"])}
    conf = mounts["/mosquitto/config/mosquitto.conf"]
    assert (COMPOSE_DIR / conf["source"]).resolve() == MOSQUITTO_CONF
    assert conf["read_only"]


def test_every_build_context_and_dockerfile_exists_in_the_repo(services):
    builds = {name: build_of(svc) for name, svc in services.items() if build_of(svc)}
    assert {"hazmon", "simulator"} <= set(builds)
    for name, (context, dockerfile) in builds.items():
        assert context.is_dir() and is_inside_repo(context), f"{name}: build context {context}"
        assert dockerfile.is_file() and is_inside_repo(dockerfile), f"{name}: Dockerfile {dockerfile}"


def test_simulator_runs_the_same_image_as_the_service(services):
    assert services["simulator"].get("image") == services["hazmon"].get("image")
    assert build_of(services["simulator"]) == build_of(services["hazmon"])


def test_hazmon_environment_sets_every_deployment_variable(services):
    env = env_of(services["hazmon"])
    missing = sorted(v for v in DEPLOYMENT_ENV_VARS if not env.get(v))
    assert not missing, f"hazmon's environment lacks {missing}"


def test_every_variable_the_deployment_sets_is_documented(services):
    documented = documented_env_vars()
    assert documented >= DEPLOYMENT_ENV_VARS
    for name in ("hazmon", "simulator"):
        stale = sorted(v for v in env_of(services[name]) if v.startswith("HAZMON_") and v not in documented)
        assert not stale, f"{name} sets {stale}, which docs/contracts.md §6 does not document"


def test_hazmon_reaches_the_broker_by_its_service_name_and_listener_port(services):
    url = urlsplit(env_of(services["hazmon"])["HAZMON_MQTT_URL"])
    listeners = [int(v.split()[0]) for v in mosquitto_settings()["listener"]]
    assert url.scheme == "mqtt"
    assert url.hostname == "mosquitto"
    assert (url.port or 1883) in listeners


def test_hazmon_writes_to_the_database_that_influxdb_creates(services):
    env = env_of(services["hazmon"])
    url = urlsplit(env["HAZMON_INFLUX_URL"])
    assert (url.scheme, url.hostname, url.port) == ("http", "influxdb", 8086)
    assert env["HAZMON_INFLUX_DB"] == env_of(services["influxdb"])["INFLUXDB_DB"]


def test_hazmon_listens_on_all_interfaces_at_the_published_container_port(services):
    env = env_of(services["hazmon"])
    assert env["HAZMON_HTTP_HOST"] == "0.0.0.0"
    assert int(env["HAZMON_HTTP_PORT"]) in {target for _, target in port_mappings(services["hazmon"])}


def test_registry_paths_in_compose_are_example_folders_baked_into_the_image(services):
    simulator_cmd = services["simulator"]["command"]
    if isinstance(simulator_cmd, str):
        simulator_cmd = shlex.split(simulator_cmd)
    paths = {
        "hazmon": env_of(services["hazmon"])["HAZMON_REGISTRY"],
        "simulator": simulator_cmd[simulator_cmd.index("--registry") + 1],
    }
    for name, container_path in paths.items():
        repo_path = path_in_image_from_repo(container_path)
        assert repo_path is not None, f"{name}: no Dockerfile COPY puts anything at {container_path}"
        assert repo_path.is_dir(), f"{name}: {repo_path} missing"
        registry_files = [*repo_path.glob("*.yaml"), *repo_path.glob("*.yml")]
        assert registry_files, f"{name}: no registry files in {repo_path}"


def test_simulator_publishes_to_the_compose_broker_as_its_own_user(services):
    cmd = services["simulator"]["command"]
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    assert cmd[:2] == ["hazmon", "simulate"]
    assert "--mqtt-url" not in cmd  # the URL holds a password, and `ps` shows argv to every user
    url = urlsplit(env_of(services["simulator"])["HAZMON_MQTT_URL"])
    assert (url.scheme, url.hostname, url.username) == ("mqtt", "mosquitto", script_users()["SIMULATOR_USER"])
    assert url.password == GENERATED["MQTT_SIMULATOR_PASSWORD"]


def test_dependencies_wait_for_healthy_servers_that_have_a_healthcheck(services):
    expected = {"hazmon": {"mosquitto", "influxdb"}, "simulator": {"mosquitto"}}
    for name, deps in expected.items():
        conditions = depends_on(services[name])
        assert set(conditions) == deps
        assert set(conditions.values()) == {"service_healthy"}
    for dep in ("mosquitto", "influxdb"):
        check = services[dep].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{dep} never becomes healthy without one"


def test_hazmon_restarts_unless_stopped(services):
    assert services["hazmon"].get("restart") == "unless-stopped"


def test_influxdb_requires_a_login_and_gives_hazmon_a_user_of_its_own(services):
    influx, hazmon = env_of(services["influxdb"]), env_of(services["hazmon"])
    assert influx["INFLUXDB_REPORTING_DISABLED"] == "true"
    assert influx["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert influx["INFLUXDB_ADMIN_USER"]
    assert influx["INFLUXDB_ADMIN_PASSWORD"] == GENERATED["INFLUX_ADMIN_PASSWORD"]
    # INFLUXDB_USER gets read and write on INFLUXDB_DB only (the image's GRANT ALL ON <db>)
    assert hazmon["HAZMON_INFLUX_USERNAME"] == influx["INFLUXDB_USER"] != influx["INFLUXDB_ADMIN_USER"]
    assert hazmon["HAZMON_INFLUX_PASSWORD"] == influx["INFLUXDB_USER_PASSWORD"]
    assert influx["INFLUXDB_USER_PASSWORD"] == GENERATED["INFLUX_USER_PASSWORD"]


def test_influxdb_init_creates_the_retention_policies_hazmon_may_not_create(services):
    mounts = {m["target"]: m for m in volume_mounts(services["influxdb"])}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert (COMPOSE_DIR / init["source"]).resolve() == INFLUX_INIT and init["read_only"]
    scripts = sorted(INFLUX_INIT.glob("*.sh"))  # the image sources *.sh and runs *.iql there
    assert scripts and sorted(INFLUX_INIT.iterdir()) == scripts
    text = "\n".join(p.read_text(encoding="utf-8") for p in scripts).replace('\\"', '"')  # shell quoting
    defaults = Settings.model_fields
    raw_days, rollup_days = defaults["raw_retention_days"].default, defaults["rollup_retention_days"].default
    policy = 'CREATE RETENTION POLICY "{}" ON "$INFLUXDB_DB" DURATION {}d REPLICATION 1'
    assert policy.format(RAW_RP, raw_days) + ' DEFAULT"' in text
    assert policy.format(ROLLUP_RP, rollup_days) + '"' in text


# ---------------------------------------------------------------------------------- mosquitto


def test_broker_persists_queues_on_its_data_volume(services):
    settings = mosquitto_settings()
    assert settings["persistence"] == ["true"]
    location = PurePosixPath(settings["persistence_location"][-1])
    volume_targets = {
        PurePosixPath(m["target"]) for m in volume_mounts(services["mosquitto"]) if m["type"] == "volume"
    }
    assert location in volume_targets, "queued readings would be lost when the container is recreated"


def test_broker_queue_is_large_enough_to_keep_readings_while_hazmon_restarts():
    settings = mosquitto_settings()
    queued = int(settings["max_queued_messages"][-1])  # default 1000 drops readings in seconds
    assert queued == 0 or queued >= 100_000
    assert int(settings.get("max_queued_bytes", ["0"])[-1]) == 0


def test_broker_saves_its_database_at_least_every_few_seconds():
    assert int(mosquitto_settings()["autosave_interval"][-1]) <= 5


# ---------------------------------------------------------------------------------- Dockerfile


def test_every_dockerfile_copy_source_exists_in_the_build_context():
    copies = copy_instructions()
    assert copies
    for sources, _dest in copies:
        matched = []
        for src in sources:
            if any(ch in src for ch in "*?["):
                matched += list(REPO.glob(src))  # a wildcard may match nothing, but not every source
            else:
                assert (REPO / src).exists(), f"COPY source {src} does not exist"
                matched.append(REPO / src)
        assert matched, f"COPY {sources}: nothing to copy"


def test_no_dockerfile_copy_source_is_excluded_by_dockerignore():
    patterns = dockerignore_patterns()
    for sources, _dest in copy_instructions():
        for src in sources:
            for path in REPO.glob(src) if any(ch in src for ch in "*?[") else [REPO / src]:
                rel = path.relative_to(REPO).as_posix()
                assert not is_dockerignored(rel, patterns), f"{rel} is in .dockerignore"


def test_dockerignore_keeps_venv_git_and_local_state_out_of_the_build_context():
    patterns = dockerignore_patterns()
    for path in (".venv", ".git", "var", ".pytest_cache", "hazmon/__pycache__", ".env"):
        assert is_dockerignored(path, patterns), path


def test_dockerfile_copies_every_package_that_pyproject_installs():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {PurePosixPath(src).parts[0] for sources, _ in copy_instructions() for src in sources}
    assert packages <= copied, f"pip install would miss {sorted(packages - copied)}"


def test_image_runs_hazmon_as_non_root_with_a_healthcheck_and_port_8000():
    instructions = dockerfile_instructions()
    froms = [args for w, args in instructions if w == "FROM"]
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)
    users = [args for w, args in instructions if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("EXPOSE", "8000") in instructions
    healthcheck = next(args for w, args in instructions if w == "HEALTHCHECK")
    assert "urllib" in healthcheck and "/livez" in healthcheck  # anonymous liveness; /healthz needs a user
    cmd = [args for w, args in instructions if w == "CMD"][-1]
    assert json.loads(cmd) == ["hazmon", "run"]
    assert dockerfile_workdir_of_last_stage() == PurePosixPath("/app")
    env = " ".join(args for w, args in instructions if w == "ENV")
    assert "HAZMON_HTTP_HOST=0.0.0.0" in env and "HAZMON_DATA_DIR=/var/lib/hazmon" in env


# ---------------------------------------------------------------------------------- secrets


def test_every_compose_variable_is_a_required_secret_that_make_secrets_generates():
    variables = compose_variables()
    assert variables
    script = MAKE_SECRETS.read_text(encoding="utf-8")
    for name, kind, message in variables:
        assert kind == "?", f"${{{name}}} would fall back to a default instead of stopping compose"
        assert "deploy/make-secrets.sh" in message, f"${{{name}}}: say how to make it"
        assert re.search(rf"\b{name}\b", script), f"deploy/make-secrets.sh does not generate {name}"


def test_compose_stops_with_a_clear_message_without_the_generated_secrets(compose):
    with pytest.raises(KeyError, match=r"is missing a value: run deploy/make-secrets\.sh"):
        interpolate_tree(compose, {})


def test_no_password_is_written_into_compose(compose):
    for name, svc in compose["services"].items():
        for key, value in env_of(svc).items():
            secret = re.fullmatch(r"\$\{\w+:\?[^}]*\}", value or "")
            if "PASSWORD" in key:
                assert secret, f"{name}: {key} is not a generated secret"
            for _user, password in re.findall(r"://([^:/@]+):([^@]*)@", value or ""):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", password), f"{name}: {key} holds a password"


def test_generated_secrets_stay_out_of_git_and_of_the_image():
    ignored = {line.strip() for line in GITIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".env", "deploy/secrets/"} <= ignored
    patterns = dockerignore_patterns()
    assert is_dockerignored(".env", patterns) and is_dockerignored("deploy/secrets/gateways.csv", patterns)


# ---------------------------------------------------------------------------------- broker login


def test_broker_admits_no_anonymous_client_and_reads_the_generated_users_and_acl(services):
    settings = mosquitto_settings()
    assert settings["allow_anonymous"] == ["false"]
    mounts = {m["target"]: m for m in volume_mounts(services["mosquitto"])}
    for option, generated in (("password_file", "passwd"), ("acl_file", "acl")):
        mount = mounts[settings[option][-1]]
        assert (COMPOSE_DIR / mount["source"]).resolve() == SECRETS_DIR / "mosquitto" / generated
        assert mount["read_only"]


@pytest.mark.parametrize("tls", [False, True], ids=["as shipped", "TLS example enabled"])
def test_every_listener_binds_the_client_id_to_the_user_name(tls):
    # else a gateway's password could take over hazmon's persistent session by its client id
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    if tls:
        text = text.replace("\n#TLS ", "\n")
    blocks = listener_blocks(text)
    assert len(blocks) == (2 if tls else 1)
    for block in blocks:
        assert block.get("use_username_as_clientid") == ["true"], block["listener"]
    if tls:
        assert {"cafile", "certfile", "keyfile", "tls_version"} <= set(blocks[1])


def test_hazmon_logs_in_to_the_broker_with_one_user_per_client(services):
    env, users = env_of(services["hazmon"]), script_users()
    ingest, events = urlsplit(env["HAZMON_MQTT_URL"]), urlsplit(env["HAZMON_EVENTS_MQTT_URL"])
    assert (ingest.username, ingest.password) == (users["INGEST_USER"], GENERATED["MQTT_INGEST_PASSWORD"])
    assert (events.username, events.password) == (users["EVENTS_USER"], GENERATED["MQTT_EVENTS_PASSWORD"])
    # the broker forces client id = user name: one user for both clients would make them
    # disconnect each other in turns
    assert ingest.username != events.username
    assert (events.scheme, events.hostname, events.port) == (ingest.scheme, ingest.hostname, ingest.port)
    assert users["INGEST_USER"] == Settings.model_fields["mqtt_client_id"].default  # ids in logs match


def test_broker_healthcheck_logs_in_as_its_own_user(services):
    kind, command = services["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert f"-u {script_users()['HEALTHCHECK_USER']} " in command
    assert '-P "$MQTT_HEALTHCHECK_PASSWORD"' in command  # the container's variable, expanded by sh
    password = env_of(services["mosquitto"])["MQTT_HEALTHCHECK_PASSWORD"]
    assert password == GENERATED["MQTT_HEALTHCHECK_PASSWORD"]

"""deploy/make-secrets.sh: random passwords, never defaults, kept across runs, and exactly the
files docker-compose.yml reads. (Integration: it runs Mosquitto's mosquitto_passwd.)"""

from __future__ import annotations

import re
import stat

import pytest
import yaml

from hazmon.config import Settings
from tests.support.compose import interpolate_tree
from tests.support.shipped_stack import COMPOSE_FILE, SIMULATOR_USER, make_secrets, run_make_secrets

pytestmark = pytest.mark.integration

EXAMPLE_SITES = {"chenzhou-tsf-01", "dayawan-srs-01", "gaolan-lpg-01", "jianghai-tf-01", "renhua-tsf-01"}


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_password_is_random_and_compose_gets_every_file_and_variable(tmp_path):
    made = make_secrets(tmp_path)
    passwords = [*made.env.values(), *(pw for _user, pw in made.gateways.values())]
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", pw) for pw in passwords)
    assert len(set(passwords)) == len(passwords)  # no shared or default password
    assert {site for site, _device in made.gateways} == EXAMPLE_SITES
    assert made.gateways[("jianghai-tf-01", "tf-gw-02")][0] == "gw.jianghai-tf-01.tf-gw-02"  # one per device
    assert len(made.gateways) == 11  # the example registry's devices; every sensor names one
    assert mode(tmp_path / ".env") == mode(tmp_path / "deploy/secrets/gateways.csv") == 0o600
    assert mode(made.passwd) == mode(made.acl) == 0o644  # hashes only, read by the broker's own user

    compose = interpolate_tree(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), made.env)
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict) and volume["source"].startswith("./deploy/secrets/"):
                assert (tmp_path / volume["source"]).is_file(), volume["source"]
    users = [line.split(":")[0] for line in made.passwd.read_text().splitlines()]
    gateway_users = [user for user, _pw in made.gateways.values()]
    assert users == ["hazmon-ingest", "hazmon-ingest-events", "healthcheck", "events-reader", SIMULATOR_USER,
                     *gateway_users]  # fmt: skip
    hashes = [line.split(":", 1)[1] for line in made.passwd.read_text().splitlines()]
    assert all(re.fullmatch(r"\$7\$101\$\S+", h) for h in hashes)  # PBKDF2-SHA512, no plain text


def test_the_demo_does_not_read_the_generated_env_file(tmp_path, monkeypatch):
    # hazmon reads a .env in its working directory: the compose variables must not reach it
    made = make_secrets(tmp_path)
    assert not [name for name in made.env if name.upper().startswith("HAZMON_")]
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"HAZMON_{name.upper()}", raising=False)
    assert Settings().model_dump() == Settings(_env_file=None).model_dump()


def test_a_second_run_keeps_every_password_and_adds_new_sites(tmp_path):
    (tmp_path / ".env").write_text("# an operator's own line\nOTHER=kept\n")
    first = make_secrets(tmp_path)
    second = make_secrets(tmp_path, "--site", "new-site-01")
    assert second.env == first.env and second.env["OTHER"] == "kept"
    assert {g: second.gateways[g] for g in first.gateways} == first.gateways  # no gateway locked out
    assert set(second.gateways) == set(first.gateways) | {("new-site-01", "*")}
    assert "user gw-new-site-01\ntopic write hazmon/v1/new-site-01/+/readings\n" in second.acl.read_text()


def test_each_gateway_may_publish_only_under_its_own_device_and_a_site_without_devices_gets_a_site_user(
    tmp_path,
):
    registry = tmp_path / "registry.yaml"
    sensor = {"name": "液位", "kind": "level", "unit": "m", "range": [0, 10], "interval_s": 10}
    registry.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "id": "s-a",
                        "sensors": [{**sensor, "id": "L1", "device": "rtu-1"}, {**sensor, "id": "L2"}],
                    },
                    {
                        "id": "s-b",
                        "sensors": [
                            {**sensor, "id": "L1", "device": "rtu-2"},
                            {**sensor, "id": "C1", "compute": {"expr": "a", "inputs": {"a": "L1"}}},
                        ],
                    },
                ]
            },
            allow_unicode=True,
        )
    )
    made = make_secrets(tmp_path, "--registry", str(registry))
    assert {g: user for g, (user, _pw) in made.gateways.items()} == {
        ("s-a", "rtu-1"): "gw.s-a.rtu-1",
        ("s-a", "*"): "gw-s-a",  # for L2, which names no device
        ("s-b", "rtu-2"): "gw.s-b.rtu-2",  # and no site-wide user for C1: hazmon computes it
    }
    acl = made.acl.read_text()
    assert (
        "user gw.s-b.rtu-2\ntopic write hazmon/v1/s-b/rtu-2/readings\n"
        "topic write hazmon/v1/s-b/rtu-2/status\n" in acl
    )
    assert "user gw-s-a\ntopic write hazmon/v1/s-a/+/readings\n" in acl


def test_a_gateways_file_of_the_older_per_site_form_keeps_its_users_as_site_wide_ones(tmp_path):
    old = tmp_path / "deploy" / "secrets" / "gateways.csv"
    old.parent.mkdir(parents=True)
    old.write_text("site,user,password\njianghai-tf-01,gw-jianghai-tf-01,Abcdefghijklmnop1234567890abcdef\n")
    made = make_secrets(tmp_path)
    assert made.gateways[("jianghai-tf-01", "*")] == ("gw-jianghai-tf-01", "Abcdefghijklmnop1234567890abcdef")
    assert ("jianghai-tf-01", "tf-gw-01") in made.gateways  # and the devices get users of their own
    assert "user gw-jianghai-tf-01\ntopic write hazmon/v1/jianghai-tf-01/+/readings\n" in made.acl.read_text()


def test_without_simulator_the_fleet_user_that_publishes_for_every_site_is_left_out(tmp_path):
    made = make_secrets(tmp_path, "--without-simulator")
    assert SIMULATOR_USER not in made.passwd.read_text() and SIMULATOR_USER not in made.acl.read_text()
    assert made.env["MQTT_SIMULATOR_PASSWORD"]  # compose still interpolates the simulator service


@pytest.mark.parametrize("site", ["Upper", "has space", "a/b", "+", "#", ""])
def test_a_site_id_that_could_inject_acl_lines_is_refused(tmp_path, site):
    done = run_make_secrets(tmp_path, "--site", site)
    assert done.returncode == 1 and "bad site id" in done.stderr
    assert not (tmp_path / "deploy/secrets/mosquitto/acl").exists()


@pytest.mark.parametrize("device", ["rtu-1\ntopic write #", "rtu/+", "gw.x", "RTU-1"])
def test_a_device_id_that_could_inject_acl_lines_or_user_names_is_refused(tmp_path, device):
    registry = tmp_path / "registry.yaml"
    sensor = {"id": "L1", "name": "液位", "kind": "level", "unit": "m", "range": [0, 10], "device": device}
    registry.write_text(yaml.safe_dump({"sites": [{"id": "s-a", "sensors": [sensor]}]}, allow_unicode=True))
    done = run_make_secrets(tmp_path, "--registry", str(registry))
    assert done.returncode == 1 and "bad device id" in done.stderr
    assert not (tmp_path / "deploy/secrets/mosquitto/acl").exists()


def test_an_unreadable_registry_stops_with_a_hint(tmp_path):
    done = run_make_secrets(tmp_path, "--registry", str(tmp_path / "missing"))
    assert done.returncode == 1 and "--site ID" in done.stderr
    assert not (tmp_path / ".env").exists()

"""The shipped deployment files (deploy/, docker-compose.yml) run on a test machine, no Docker.

`make_secrets` runs deploy/make-secrets.sh into a folder of its own. `ShippedMosquitto` runs the
real broker with deploy/mosquitto/mosquitto.conf changed only where a test machine must differ
from the container: the port, and the paths of the password file, the ACL, the data folder and
the TLS files. Every other line, authentication and ACL included, is the shipped one, and each
substitution must match exactly once, so an edit to the shipped file cannot silently leave a
test running something else.
"""

from __future__ import annotations

import csv
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from hazmon.devservers import MOSQUITTO_BIN, InfluxServer, _ChildServer, free_port, wait_port
from tests.support.compose import interpolate

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
MAKE_SECRETS = REPO / "deploy" / "make-secrets.sh"
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
INFLUX_INIT = REPO / "deploy" / "influxdb" / "init"

# user names fixed by deploy/make-secrets.sh and docker-compose.yml
INGEST_USER = "hazmon-ingest"
EVENTS_USER = "hazmon-ingest-events"
EVENTS_READER_USER = "events-reader"
SIMULATOR_USER = "hazmon-simulator"


@dataclass(frozen=True)
class Secrets:
    root: Path
    env: dict[str, str]  # the generated .env
    gateways: dict[tuple[str, str], tuple[str, str]]  # (site, device or "*") -> (user, password)

    @property
    def passwd(self) -> Path:
        return self.root / "deploy" / "secrets" / "mosquitto" / "passwd"

    @property
    def acl(self) -> Path:
        return self.root / "deploy" / "secrets" / "mosquitto" / "acl"


def read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def run_make_secrets(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The shipped script, writing under `root`; Python with PyYAML is this interpreter."""
    return subprocess.run(
        ["bash", str(MAKE_SECRETS), "--root", str(root), *args],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        check=False,
    )


def make_secrets(root: Path, *args: str) -> Secrets:
    done = run_make_secrets(root, *args)
    assert done.returncode == 0, done.stderr
    with open(root / "deploy" / "secrets" / "gateways.csv", encoding="utf-8") as f:
        gateways = {(row["site"], row["device"]): (row["user"], row["password"]) for row in csv.DictReader(f)}
    return Secrets(root, read_env_file(root / ".env"), gateways)


def world_traversable_dir(prefix: str) -> Path:
    """A folder under /tmp that the `mosquitto` user can reach (pytest's tmp_path is 0700 to
    root): as root the broker drops to that user before it reads its files, as in the image."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


def open_to_broker(path: Path, top: Path) -> None:
    """Let the broker's user traverse the folders from `top` down to `path` (make-secrets.sh
    writes them 0700; in the container the files are bind-mounted alone, no folder is crossed)."""
    for folder in [path, *path.parents]:
        if not folder.is_relative_to(top):
            break
        if folder.is_dir():
            folder.chmod(folder.stat().st_mode | 0o011)


def make_test_ca(folder: Path) -> None:
    """A CA and a broker certificate for 127.0.0.1, with README's openssl commands (TLS)."""
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for command in (
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj '/CN=hazmon test CA'",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 825"
        " -extfile server.ext",
    ):
        subprocess.run(["openssl", *shlex.split(command)], cwd=folder, check=True, capture_output=True)
    for name in ("ca.crt", "server.crt", "server.key"):
        (folder / name).chmod(0o644)  # a test key: the broker reads it as its own user


def substitute(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the shipped file no longer has exactly one {old!r}"
    return text.replace(old, new)


def shipped_mosquitto_conf(
    secrets: Secrets, data_dir: Path, port: int, tls_dir: Path | None = None, tls_port: int | None = None
) -> str:
    """deploy/mosquitto/mosquitto.conf with a test machine's port and paths; with `tls_dir`, its
    commented TLS listener enabled as README tells an operator to (remove the `#TLS ` marks)."""
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    text = substitute(text, "\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n")
    text = substitute(text, "password_file /mosquitto/config/passwd\n", f"password_file {secrets.passwd}\n")
    text = substitute(text, "acl_file /mosquitto/config/acl\n", f"acl_file {secrets.acl}\n")
    text = substitute(text, "persistence_location /mosquitto/data/\n", f"persistence_location {data_dir}/\n")
    if tls_dir is not None:
        assert "\n#TLS " in text
        text = text.replace("\n#TLS ", "\n")
        text = substitute(text, "\nlistener 8883\n", f"\nlistener {tls_port} 127.0.0.1\n")
        assert text.count("/mosquitto/config/tls/") == 3
        text = text.replace("/mosquitto/config/tls/", f"{tls_dir}/")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [ln for ln in settings if " /mosquitto/" in ln], "a container path is left"
    return text


class ShippedMosquitto(_ChildServer):
    """The real broker on the shipped config (see the module docstring)."""

    name = "mosquitto"

    def __init__(self, root: Path, secrets: Secrets, tls_dir: Path | None = None):
        super().__init__(root)
        self.port = free_port()
        self.tls_port = free_port() if tls_dir else None
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        if os.geteuid() == 0:  # the broker drops root for the `mosquitto` user, as in the image
            user = pwd.getpwnam("mosquitto")
            shutil.chown(data, user.pw_uid, user.pw_gid)
        self.config = self.root / "mosquitto.conf"
        self.config.write_text(shipped_mosquitto_conf(secrets, data, self.port, tls_dir, self.tls_port))
        self.config.chmod(0o644)

    def _command(self) -> list[str]:
        return [MOSQUITTO_BIN, "-c", str(self.config)]

    def _wait_ready(self) -> None:
        wait_port(self.port, proc=self.proc)
        if self.tls_port:
            wait_port(self.tls_port, proc=self.proc)

    @property
    def log_text(self) -> str:
        return (self.root / "mosquitto.log").read_text(errors="replace")


# ---------------------------------------------------------------------------------- InfluxDB


class InfluxWithAuth(InfluxServer):
    """Debian's InfluxDB with HTTP authentication, as INFLUXDB_HTTP_AUTH_ENABLED=true sets it."""

    def __init__(self, root: Path):
        super().__init__(root)
        conf = substitute(self.config.read_text(), "auth-enabled = false", "auth-enabled = true")
        self.config.write_text(conf)


def influx_cmd(server: InfluxServer, user: str, password: str) -> str:
    """The influxdb:1.8 image's INFLUX_CMD (init-influxdb.sh), against this server."""
    return f"influx -host 127.0.0.1 -port {server.http_port} -username {user} -password {password} -execute "


def init_like_the_image(
    server: InfluxServer, admin_password: str, user_password: str, db: str = "hazmon", scripts: bool = True
) -> None:
    """What the influxdb:1.8 image does on its first start with docker-compose.yml's variables:
    the admin (the first user may be created without credentials), the database, hazmon's user
    with GRANT ALL on it, then every *.sh of /docker-entrypoint-initdb.d (deploy/influxdb/init)
    sourced with INFLUX_CMD and INFLUXDB_DB set."""
    port = server.http_port

    def influx(statement: str, *auth: str) -> None:
        cmd = ["influx", "-host", "127.0.0.1", "-port", str(port), *auth, "-execute", statement]
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    admin = ("-username", "admin", "-password", admin_password)
    influx(f"CREATE USER \"admin\" WITH PASSWORD '{admin_password}' WITH ALL PRIVILEGES")
    influx(f"CREATE DATABASE {db}", *admin)
    influx(f"CREATE USER \"hazmon\" WITH PASSWORD '{user_password}'", *admin)
    influx('REVOKE ALL PRIVILEGES FROM "hazmon"', *admin)
    influx(f'GRANT ALL ON "{db}" TO "hazmon"', *admin)
    if scripts:
        script = 'set -e; for f in "$INIT_DIR"/*.sh; do . "$f"; done'
        env = dict(os.environ, INFLUXDB_DB=db, INIT_DIR=str(INFLUX_INIT),
                   INFLUX_CMD=influx_cmd(server, "admin", admin_password))  # fmt: skip
        subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True, text=True)


# ---------------------------------------------------------------------------------- compose


def compose_environment(service: str, env: dict[str, str]) -> dict[str, str]:
    """A service's `environment:` from docker-compose.yml, interpolated with `env` (the .env)."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"][service]
    return {k: interpolate(str(v), env) for k, v in (spec.get("environment") or {}).items()}

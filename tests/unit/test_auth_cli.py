"""`hazmon user ...` (hazmon/cli.py): accounts in $HAZMON_DATA_DIR/auth.sqlite, passwords from stdin."""

from __future__ import annotations

import io

import pytest

from api.auth.errors import InvalidCredentials
from api.auth.model import Role, Scope
from api.auth.store import AuthStore
from hazmon.cli import main

PW = "correct horse battery"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HAZMON_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env from the working tree
    return tmp_path


def run(monkeypatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["--log-level", "WARNING", "user", *argv])


@pytest.mark.deep
def test_first_admin_then_users_list_and_token(data_dir, monkeypatch, capsys):
    assert (
        run(monkeypatch, ["add", "root", "--role", "admin", "--all-sites", "--password-stdin"], PW + "\n")
        == 0
    )
    args = ["add", "op", "--role", "operator", "--city", "江门市", "--district", "江海区", "--name", "值班员"]
    assert run(monkeypatch, [*args, "--password-stdin"], PW + "\n") == 0
    assert run(monkeypatch, ["add", "v", "--role", "viewer", "--sites", "a, b", "--password-stdin"], PW) == 0
    capsys.readouterr()

    assert run(monkeypatch, ["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "op\toperator\t江门市江海区\t值班员",
        "root\tadmin\tall sites\t",
        "v\tviewer\tsites a,b\t",
    ]

    assert run(monkeypatch, ["token", "op", "--name", "scada"]) == 0
    secret = capsys.readouterr().out.strip()
    with AuthStore(data_dir / "auth.sqlite") as store:
        principal = store.resolve_token(secret)
        assert principal is not None and principal.username == "op"
        assert store.authenticate("root", PW).role is Role.ADMIN
        assert store.get_user("op").scope == Scope.jurisdiction("江门市", "江海区")
        assert all(e.actor.startswith("cli") for e in store.audit_log() if e.action == "create_user")


@pytest.mark.deep
def test_passwd_changes_the_password(data_dir, monkeypatch):
    assert run(monkeypatch, ["add", "root", "--role", "admin", "--all-sites", "--password-stdin"], PW) == 0
    assert run(monkeypatch, ["passwd", "root", "--password-stdin"], "a brand new one\n") == 0
    with AuthStore(data_dir / "auth.sqlite") as store:
        with pytest.raises(InvalidCredentials):
            store.authenticate("root", PW)
        assert store.authenticate("root", "a brand new one").username == "root"


def test_prompt_asks_twice(data_dir, monkeypatch, capsys):
    answers = iter([PW, PW + "typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(monkeypatch, ["add", "root", "--role", "admin", "--all-sites"]) == 1
    assert "differ" in capsys.readouterr().err
    answers = iter([PW, PW])
    assert run(monkeypatch, ["add", "root", "--role", "admin", "--all-sites"]) == 0


@pytest.mark.parametrize(
    ("argv", "stdin", "code", "message"),
    [
        (["add", "root", "--role", "admin", "--password-stdin"], PW, 2, "--all-sites"),
        (["add", "root", "--role", "admin", "--district", "江海区", "--password-stdin"], PW, 2, "--city"),
        (["add", "root", "--role", "admin", "--all-sites", "--password-stdin"], "short", 1, "at least 10"),
        (["add", "root", "--role", "admin", "--all-sites", "--password-stdin"], "", 1, "at least 10"),
        (["passwd", "ghost", "--password-stdin"], PW, 1, "no user"),
        (["token", "ghost", "--name", "x"], "", 1, "no user"),
    ],
)
def test_errors_are_one_line_and_nonzero(data_dir, monkeypatch, capsys, argv, stdin, code, message):
    assert run(monkeypatch, argv, stdin) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_role_is_a_usage_error(data_dir, monkeypatch):
    with pytest.raises(SystemExit) as e:
        run(monkeypatch, ["add", "root", "--role", "boss", "--all-sites", "--password-stdin"], PW)
    assert e.value.code == 2


@pytest.mark.deep
def test_province_and_park_regulators_are_added_with_their_scopes(data_dir, monkeypatch, capsys):
    assert (
        run(monkeypatch, ["add", "gd", "--role", "viewer", "--province", "广东省", "--password-stdin"], PW)
        == 0
    )
    assert (
        run(
            monkeypatch, ["add", "pk", "--role", "viewer", "--park", "江门化工集中区", "--password-stdin"], PW
        )
        == 0
    )
    capsys.readouterr()
    assert run(monkeypatch, ["list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "gd\tviewer\t广东省 (whole province)\t",
        "pk\tviewer\tpark 江门化工集中区\t",
    ]
    with AuthStore(data_dir / "auth.sqlite") as store:
        assert store.get_user("gd").scope == Scope.jurisdiction(None, province="广东省")
        assert store.get_user("pk").scope == Scope.of_park("江门化工集中区")

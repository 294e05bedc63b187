"""hazmon's command line: a light command does not import the heavy ones' modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hazmon.cli import _command_of, build_parser


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["user", "list"], "user"),
        (["--log-level", "DEBUG", "run"], "run"),
        (["--log-level=DEBUG", "tune", "--json"], "tune"),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_command_is_found_past_the_global_options(argv, command):
    assert _command_of(argv) == command


def test_user_and_run_do_not_import_the_tuner_or_the_simulator():
    code = (
        "import sys; from hazmon.cli import build_parser; build_parser('user'); build_parser('run'); "
        "print(sorted(m for m in ('hazmon.tune_cmd', 'simulators.cli', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_heavy_commands_still_parse_their_options():
    args = build_parser("tune").parse_args(["tune", "--registry", "r.yaml", "--readings", "x.csv"])
    assert args.command == "tune"
    args = build_parser("registry").parse_args(["registry", "check", "--registry", "r.yaml"])
    assert args.command == "registry"

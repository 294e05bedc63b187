"""The `hazmon` command: run the service, simulate a fleet, run the demo, backtest or tune on history."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from sensors.registry import RegistryError


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # the alarm clock jobs run every second; APScheduler would log each run at INFO
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO: each InfluxDB write, and Kannel's password in sendsms
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from alerts.notify.channels.webhook import RedactWebhookSecrets

    logging.getLogger("uvicorn.access").addFilter(RedactWebhookSecrets())  # Kannel's callback token


def _cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from hazmon.bootstrap import bootstrap, forward_summary_sensors
    from hazmon.config import Settings
    from sensors.registry import load_registry

    try:
        settings = Settings()
        registry = load_registry(settings.registry)  # fail fast, before binding any port
    except ValidationError as e:
        print(f"hazmon: bad configuration:\n{e}", file=sys.stderr)
        return 2
    except RegistryError as e:
        print(f"hazmon: {e}", file=sys.stderr)
        return 2
    try:  # upward forwarding: the summary sensors must be in the registry (alerts/forward/)
        forward_summary_sensors(settings, registry)
    except ValueError as e:
        print(f"hazmon: bad configuration: {e}", file=sys.stderr)
        return 2
    from api.auth.store import AuthStore

    auth = AuthStore(settings.data_dir / "auth.sqlite")
    if not auth.list_users():
        logging.getLogger("hazmon").warning(
            "no user accounts yet: every API call will be refused; create the first admin with"
            " `hazmon user add <name> --role admin --all-sites`"
        )
    app = create_app(lambda: bootstrap(settings, registry), auth)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=args.log_level.lower(),
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.cli import run

    try:
        return run(args)
    except RegistryError as e:
        print(f"hazmon simulate: {e}", file=sys.stderr)
        return 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from hazmon.demo import run_demo

    return run_demo(args)


def _cmd_backtest(args: argparse.Namespace) -> int:
    from alerts.backtest import Progress, format_summary, run_backtest

    for path in (args.registry, args.readings):
        if not path.exists():
            print(f"hazmon backtest: {path}: no such file or folder", file=sys.stderr)
            return 2
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("alerts").setLevel(logging.WARNING)  # the events file is the record, not the log
    progress = None if args.quiet else Progress()
    try:
        summary = run_backtest(
            args.registry, args.readings, args.out, tail_ms=int(args.tail_s * 1000), progress=progress
        )
    except RegistryError as e:
        print(f"hazmon backtest: {e}", file=sys.stderr)
        return 2
    except (ValueError, UnicodeDecodeError) as e:
        print(f"hazmon backtest: {args.readings}: {e}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close()
    print(format_summary(summary))
    if args.calibration is not None and summary.calibration is not None:
        args.calibration.write_text(json.dumps(summary.calibration.to_dict(), indent=1), encoding="utf-8")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from hazmon.tune_cmd import run

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("alerts").setLevel(logging.WARNING)  # the report is the record, not the log
    return run(args)


# ---- hazmon user: accounts in $HAZMON_DATA_DIR/auth.sqlite (issue 5); no default password anywhere


def _read_password(args: argparse.Namespace) -> str | None:
    """The new password from stdin (--password-stdin, one line) or typed twice at a prompt."""
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("repeat it: ") != first:
        print("hazmon user: the passwords differ", file=sys.stderr)
        return None
    return first


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _scope_from_args(args: argparse.Namespace):
    from api.auth.model import Scope

    if args.all_sites:
        return Scope.everything()
    if args.sites:
        return Scope.of_sites(s.strip() for s in args.sites.split(",") if s.strip())
    if args.park:
        return Scope.of_park(args.park)
    if args.city or args.province:
        return Scope.jurisdiction(args.city, args.district, args.province)
    return None


def _cmd_user(args: argparse.Namespace) -> int:
    from api.auth.errors import AuthError
    from api.auth.store import AuthStore
    from hazmon.config import Settings

    try:
        path = Settings().data_dir / "auth.sqlite"
    except ValidationError as e:
        print(f"hazmon: bad configuration:\n{e}", file=sys.stderr)
        return 2
    if getattr(args, "district", None) and not getattr(args, "city", None):
        print("hazmon user add: --district needs --city", file=sys.stderr)
        return 2
    try:
        with AuthStore(path) as store:
            return _user_subcommand(args, store)
    except AuthError as e:
        print(f"hazmon user {args.user_command}: {e}", file=sys.stderr)
        return 1


def _user_subcommand(args: argparse.Namespace, store) -> int:
    actor = _cli_actor()
    if args.user_command == "list":
        for u in store.list_users():
            flag = " (disabled)" if u.disabled else ""
            print(f"{u.username}\t{u.role.value}\t{u.scope.describe()}\t{u.display_name}{flag}")
        return 0
    if args.user_command == "token":
        token, secret = store.create_token(args.username, args.name, actor=actor)
        print(
            f"# token {token.id} '{token.name}' for {token.username}; shown once, keep it secret",
            file=sys.stderr,
        )
        print(secret)
        return 0
    if args.user_command == "disable":
        store.disable(args.username, actor=actor)
        print(f"hazmon user: {args.username} disabled; their sessions ended", file=sys.stderr)
        return 0
    if args.user_command == "add":
        scope = _scope_from_args(args)
        if scope is None:
            print(
                "hazmon user add: give --sites, --province, --city [--district], --park or --all-sites",
                file=sys.stderr,
            )
            return 2
        password = _read_password(args)
        if password is None:
            return 1
        user = store.create_user(
            args.username, password, args.role, scope, display_name=args.name or "", actor=actor
        )
        print(
            f"hazmon user: created {user.username} ({user.role.value}, {scope.describe()})", file=sys.stderr
        )
        return 0
    # passwd
    password = _read_password(args)
    if password is None:
        return 1
    store.set_password(args.username, password, actor=actor)
    print(f"hazmon user: password of {args.username} changed; their sessions ended", file=sys.stderr)
    return 0


def _add_user_parser(sub) -> None:
    from api.auth.model import Role

    p_user = sub.add_parser("user", help="manage accounts in $HAZMON_DATA_DIR/auth.sqlite")
    p_user.set_defaults(func=_cmd_user)
    users = p_user.add_subparsers(dest="user_command", required=True)

    p_add = users.add_parser("add", help="create a user (the first admin too); the password is asked for")
    p_add.add_argument("username")
    p_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    where = p_add.add_mutually_exclusive_group()
    where.add_argument("--sites", help="comma-separated site ids the user sees")
    where.add_argument("--city", help="jurisdiction: a city as the registry spells it (江门市)")
    where.add_argument("--all-sites", action="store_true", help="every site (grant explicitly)")
    where.add_argument("--park", help="a chemical park: the sites whose registry `park` is this name")
    p_add.add_argument("--province", help="jurisdiction: a province (广东省); with --city, that city of it")
    p_add.add_argument("--district", help="with --city: one district of it (江海区)")
    p_add.add_argument("--name", help="display name")
    p_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    p_pw = users.add_parser("passwd", help="set a user's password (ends their sessions)")
    p_pw.add_argument("username")
    p_pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    p_tok = users.add_parser("token", help="print a new API token for a user (shown once)")
    p_tok.add_argument("username")
    p_tok.add_argument("--name", required=True, help="what the token is for, e.g. scada-gateway")

    p_dis = users.add_parser("disable", help="disable a user and end their sessions")
    p_dis.add_argument("username")

    users.add_parser("list", help="list users: name, role, scope, display name")


#: subcommands whose options come from modules that import the engine, numba or the simulator (about
#: 0.5 s of imports): their options are added only when that subcommand (or help) is asked for, so
#: `hazmon user add` and `hazmon run` do not pay for them
_HEAVY_COMMANDS = frozenset({"simulate", "tune", "registry"})


def _command_of(argv: list[str]) -> str | None:
    """The subcommand in argv (None when there is none, or help comes first)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif arg in ("-h", "--help"):
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """hazmon's parser; given the `command` about to run, the other heavy subcommands get no options."""
    full = command is None or command in _HEAVY_COMMANDS
    parser = argparse.ArgumentParser(
        prog="hazmon", description="Monitoring of major hazard sources (重大危险源)."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="run the service (configured by HAZMON_* environment variables)")
    p_run.set_defaults(func=_cmd_run)

    p_sim = sub.add_parser("simulate", help="publish a simulated sensor fleet over MQTT")
    if full:
        from simulators.cli import add_arguments as add_simulate_arguments

        add_simulate_arguments(p_sim)
    p_sim.set_defaults(func=_cmd_simulate)

    p_bt = sub.add_parser(
        "backtest",
        help="replay recorded readings through the alarm engine (docs/contracts.md §4), no servers",
    )
    p_bt.add_argument(
        "--registry", type=Path, required=True, help="registry file or folder (docs/contracts.md §2)"
    )
    p_bt.add_argument(
        "--readings", type=Path, required=True, help="CSV: time,site,sensor,value[,quality], any order"
    )
    p_bt.add_argument("--out", type=Path, required=True, help="events, one JSON object per line (§3)")
    p_bt.add_argument(
        "--tail-s", type=float, default=0.0, help="run the clock this long past the last reading"
    )
    p_bt.add_argument("--quiet", action="store_true", help="no progress display")
    p_bt.add_argument(
        "--calibration",
        type=Path,
        help="also write the early warnings' calibration (reliability table, band coverage) as JSON",
    )
    p_bt.set_defaults(func=_cmd_backtest)

    p_tune = sub.add_parser(
        "tune",
        help="alarm rationalisation from history: deadbands and delays to suggest (changes nothing)",
    )
    if full:
        from hazmon.tune_cmd import add_arguments as add_tune_arguments

        add_tune_arguments(p_tune)
    p_tune.set_defaults(func=_cmd_tune)

    p_demo = sub.add_parser("demo", help="start Mosquitto, InfluxDB, hazmon and a simulated fleet (make run)")
    p_demo.add_argument("--data-dir", default="var/demo", help="where the demo keeps its servers' data")
    p_demo.add_argument("--http-port", type=int, default=8000)
    p_demo.add_argument(
        "--history-days",
        type=int,
        default=7,
        metavar="N",
        help="days of simulated history written into InfluxDB before the start (default 7; 0: none)",
    )
    p_demo.add_argument(
        "--quiet-fleet", action="store_true", help="a quiet fleet instead of the scripted day on a loop"
    )
    p_demo.set_defaults(func=_cmd_demo)

    p_reg = sub.add_parser("registry", help="check a registry and explain the grades it computes")
    if full:
        from hazmon.registry_cmd import add_arguments as add_registry_arguments

        add_registry_arguments(p_reg)

    _add_user_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    _configure_logging(args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The `grassroots` command: run, inspect, operate and measure the platform."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.runtime.quiet import quiet

quiet()  # before anything imports eventlet or nameko

from shared.runtime import catalogue  # noqa: E402
from shared.runtime.auth import ROLES  # noqa: E402
from shared.runtime.private import private_umask  # noqa: E402


def _up(_args: argparse.Namespace) -> int:
    from shared.runtime.config import VAR
    from shared.runtime.private import tighten
    from shared.tools.platform import up

    tighten(VAR)  # files an earlier version left readable to others
    return up()


def _status(_args: argparse.Namespace) -> int:
    from shared.tools.platform import status

    return status()


def _token_create(args: argparse.Namespace) -> int:
    from shared.runtime.auth import create_token_cli

    return create_token_cli(args.role, cadre_id=args.cadre, unit_id=args.unit, days=args.days)


def _token_list(args: argparse.Namespace) -> int:
    from shared.runtime.auth import list_tokens_cli

    return list_tokens_cli(as_json=args.json)


def _token_revoke(args: argparse.Namespace) -> int:
    from shared.runtime.auth import revoke_token_cli

    return revoke_token_cli(args.id)


def _demo(args: argparse.Namespace) -> int:
    from shared.tools.demo import run_demo

    return run_demo(api=args.api, month=args.month, seed=args.seed)


def _rebuild(args: argparse.Namespace) -> int:
    from shared.tools.operations import rebuild

    return rebuild(args.projection)


def _verify(args: argparse.Namespace) -> int:
    from shared.tools.verify import verify

    return verify(args.service, checkpoints=args.checkpoints, sign=args.sign, jobs=args.jobs,
                  as_json=args.json)


def _bench(args: argparse.Namespace) -> int:
    if args.what == "api":  # the HTTP write path against the framework's floor
        from shared.tools.bench_api import main as bench_api_main

        return bench_api_main(["--requests", str(args.requests)])
    from shared.tools.bench import main as bench_main

    argv = [args.what, "--events", str(args.events), "--rounds", str(args.rounds)]
    if args.single is not None:
        argv += ["--single", str(args.single)]
    if args.what in ("district", "rebuild"):  # the district year's options, as given
        argv += ["--cadres", str(args.cadres), "--months", str(args.months), "--seed",
                 str(args.seed), "--commands", str(args.commands), "--appends",
                 str(args.appends), "--cache", str(args.cache), *(["--quick"] * args.quick)]
    return bench_main(argv)


def _chaos(args: argparse.Namespace) -> int:
    from shared.tools.chaos import execute

    return execute(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="grassroots", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
                into: argparse._SubParsersAction = sub) -> argparse.ArgumentParser:
        p = into.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    command("up", _up, "start the broker (if needed) and every service; Ctrl-C stops them")
    command("status", _status, "broker, services, log positions, relay and view lag")
    token = sub.add_parser("token", help="API bearer tokens").add_subparsers(
        dest="token_command", required=True)
    create = command("create", _token_create, "create a bearer token (printed once)", token)
    create.add_argument("--role", required=True,
                        choices=ROLES)
    create.add_argument("--cadre", help="the cadre id (roles cadre and head)")
    create.add_argument("--unit", help="the unit id the head leads (role head)")
    create.add_argument("--days", type=int, default=None,
                        help="days until it expires (default: GRASSROOTS_TOKEN_DAYS, else 30)")
    listing = command("list", _token_list, "every token: id, role, binding, expiry, state", token)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = command("revoke", _token_revoke, "revoke a token (kept, marked revoked)", token)
    revoke.add_argument("id", help="the token's id, as `token list` shows it")
    demo = command("demo", _demo, "load a sample district month through the API")
    demo.add_argument("--api", default=None, help="API address (default: the running `up`)")
    demo.add_argument("--month", default=None, help="YYYY-MM (default: this month once its "
                      "fixed day has come, else last month)")
    demo.add_argument("--seed", type=int, default=7)
    projections = sub.add_parser("projections", help="operate projections").add_subparsers(
        dest="projections_command", required=True)
    rebuild = command("rebuild", _rebuild, "rebuild a projection from the logs", projections)
    rebuild.add_argument("projection", choices=catalogue.names("view"))
    check = command("verify", _verify, "check each log's hash chain (and signed checkpoints)")
    check.add_argument("service", nargs="*", help="the logs to check: "
                       f"{', '.join(catalogue.names('write'))} (default: all)")
    check.add_argument("--checkpoints", type=Path, default=None,
                       help="signed checkpoints (JSON lines) the logs must agree with")
    check.add_argument("--sign", type=Path, default=None,
                       help="append a signed checkpoint of each verified head to this file")
    check.add_argument("--jobs", type=int, default=None,
                       help="parts walked at once (default: one per core)")
    check.add_argument("--json", action="store_true", help="JSON instead of a line per log")
    bench = command("bench", _bench, "benchmarks, printed as JSON")
    bench.add_argument("what", choices=["log", "api", "district", "rebuild"])
    bench.add_argument("--requests", type=int, default=400,
                       help="api: POST /visits per client count and side")
    bench.add_argument("--events", type=int, default=20000, help="events appended in batches")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    bench.add_argument("--single", type=int, default=None,
                       help="events appended one per transaction (default: events / 10)")
    from shared.tools.chaos import options as chaos_options

    chaos_options(command("chaos", _chaos, "faults injected under load; what must hold after each"))
    from shared.tools.bench import district_options

    district_options(bench)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    private_umask()  # databases, logs, tokens and keys under var/: this user's only
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

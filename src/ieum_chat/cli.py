"""The ``ieum-chat`` command. Every subcommand exits non-zero with a one-line error on bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from ieum_chat import __version__
from ieum_chat.auth import issue_token
from ieum_chat.chat.lifecycle import Lifecycle
from ieum_chat.chat.media import MediaService
from ieum_chat.config import Settings
from ieum_chat.store import Database, upgrade_schema
from ieum_chat.store.partitions import MAX_PARTITIONS, PartitionRefused, partition_messages
from ieum_chat.uploads import create_upload_backend

__all__ = ["main"]

T = TypeVar("T")


class CliError(Exception):
    """A one-line error for the user; exit status 2."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    names = ("database_url", "redis_url", "host", "port", "timezone", "public_url", "workers")
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "log_json", False):
        overrides["log_json"] = True
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"bad setting {where}: {first['msg']}") from None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = await Database.connect(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def _prepare_schema(settings: Settings) -> None:
    """SQLite is the embedded default: create and migrate it on the fly."""
    if settings.database_url.startswith("sqlite"):
        upgrade_schema(settings.database_url)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    partitions: int | None = args.partitions
    if partitions is not None:
        if settings.database_url.startswith("sqlite"):
            raise CliError("--partitions needs PostgreSQL: SQLite has no table partitioning")
        if partitions < 2 or partitions > MAX_PARTITIONS:
            raise CliError(f"--partitions must be between 2 and {MAX_PARTITIONS}")
    upgrade_schema(settings.database_url)
    print("schema is up to date")
    if partitions is None:
        return
    try:
        done = asyncio.run(partition_messages(settings.database_url, partitions))
    except PartitionRefused as exc:
        raise CliError(str(exc)) from None
    if done.converted:
        print(f"messages is hash-partitioned by couple_id into {partitions} partitions", end="")
        print(f" ({done.rows} rows moved)")
    else:
        print(f"messages was already hash-partitioned into {partitions} partitions")


def cmd_user_add(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if not args.name.strip():
        raise CliError("--name must not be blank")
    _prepare_schema(settings)
    user = _with_db(settings, lambda db: db.create_user(args.name, args.profile_image))
    print(user.id)


def cmd_couple_add(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _prepare_schema(settings)
    try:
        couple = _with_db(settings, lambda db: db.create_couple(args.user_a, args.user_b))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(couple.id)


def cmd_token(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _prepare_schema(settings)
    user = _with_db(settings, lambda db: db.get_user(args.user_id))
    if user is None:
        raise CliError(f"no user {args.user_id}")
    print(issue_token(settings, args.user_id, ttl=args.ttl))


def cmd_purge(args: argparse.Namespace) -> None:
    """Erase what couples dissolved, and accounts deleted, longer ago than the retention
    period left behind (rows and uploads); prints one line per couple and account. Then (not
    dry) the uploads no message named in time and those of unsent messages go too."""
    settings = _settings(args)
    _prepare_schema(settings)

    async def purge(db: Database) -> list[str]:
        uploads = create_upload_backend(settings)
        lines = (await Lifecycle(db, uploads, settings).purge(dry_run=args.dry_run)).lines()
        if not args.dry_run:
            removed = await MediaService(db, uploads, settings).cleanup()
            lines.append(f"deleted {removed} uploads no message named, or whose message was unsent")
        return lines

    for line in _with_db(settings, purge):
        print(line)


def _seed(settings: Settings, couples: int, ttl: float) -> list[dict[str, str]]:
    rows = _with_db(settings, lambda db: db.seed_couples(couples))
    return [
        {
            "couple": str(couple.id),
            "a": str(a.id),
            "b": str(b.id),
            "ta": issue_token(settings, a.id, ttl=ttl),
            "tb": issue_token(settings, b.id, ttl=ttl),
        }
        for couple, a, b in rows
    ]


def cmd_seed(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _prepare_schema(settings)
    json.dump(_seed(settings, args.couples, args.ttl), sys.stdout)
    sys.stdout.write("\n")


def _raise_nofile_limit() -> None:
    """Each WebSocket is a file descriptor: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _serve(settings: Settings) -> None:
    from ieum_chat.observability.logging import configure_logging
    from ieum_chat.workers import build_server, refusal, supervise

    if settings.workers > 1 and (why := refusal(settings)) is not None:
        raise CliError(why)
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    _raise_nofile_limit()  # the workers inherit it
    if settings.workers == 1:
        build_server(settings).run()
        return
    code = supervise(settings)
    if code:
        sys.exit(code)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _prepare_schema(settings)
    _serve(settings)


def cmd_demo(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _prepare_schema(settings)
    (pair,) = _seed(settings, 1, ttl=7 * 24 * 3600)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    ws = base.replace("http", "ws", 1)
    print("demo couple", pair["couple"])
    for member, token in (("a", pair["ta"]), ("b", pair["tb"])):
        print(f"member {member}: user {pair[member]}")
        print(f"  token:     {token}")
        print(f"  websocket: {ws}/ws/chat?token={token}")
        print(f"  open:      {base}/demo?token={token}")
    print(f"subscribe /topic/couple/{pair['couple']}, send to /app/chat/{pair['couple']}")
    from ieum_chat.demo import DemoSettings, find_vendor_dir

    if find_vendor_dir(DemoSettings()) is None:
        print("note: the demo page's npm packages are missing: run `make demo` (npm ci in web/)")
    sys.stdout.flush()
    _serve(settings)


def _bench_main() -> Callable[[Sequence[str]], int]:
    """The load generator lives in the source tree's bench/, outside the installed package:
    found from the working directory, or beside an editable install's src/."""
    import importlib
    from pathlib import Path

    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "bench" / "_cli.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            main: Callable[[Sequence[str]], int] = importlib.import_module("bench._cli").main
            return main
    raise CliError("bench/ is not in this tree: run from an ieum-chat checkout (python -m bench)")


def cmd_bench(args: argparse.Namespace) -> None:
    code = _bench_main()(args.bench_args)
    if code:
        sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ieum-chat", description="ieum-chat server and tools")
    parser.add_argument("--version", action="version", version=f"ieum-chat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--database-url", help="SQLAlchemy URL (env IEUM_DATABASE_URL)")
        return p

    def with_server(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_db(p)
        p.add_argument("--host", help="listen address (env IEUM_HOST, default 127.0.0.1)")
        p.add_argument("--port", type=int, help="listen port (env IEUM_PORT, default 8080)")
        p.add_argument("--redis-url", help="Redis URL for multi-node fan-out (env IEUM_REDIS_URL)")
        p.add_argument("--timezone", help="zone timestamps are rendered in (env IEUM_TIMEZONE)")
        p.add_argument("--public-url", help="base URL printed by demo (env IEUM_PUBLIC_URL)")
        p.add_argument("--log-json", action="store_true", help="JSON log lines (IEUM_LOG_JSON)")
        p.add_argument(
            "--workers",
            type=_positive,
            help="processes serving the one port (env IEUM_WORKERS, default 1; more than one "
            "needs IEUM_REDIS_URL)",
        )
        return p

    with_server(sub.add_parser("serve", help="run the server")).set_defaults(func=cmd_serve)
    migrate = with_db(sub.add_parser("migrate", help="apply schema migrations"))
    migrate.add_argument(
        "--partitions",
        type=_positive,
        metavar="N",
        help="then hash-partition messages by couple_id into N tables (PostgreSQL)",
    )
    migrate.set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user_add = with_db(user.add_parser("add", help="create a user; prints its id"))
    user_add.add_argument("--name", required=True)
    user_add.add_argument("--profile-image")
    user_add.set_defaults(func=cmd_user_add)

    couple = sub.add_parser("couple", help="manage couples").add_subparsers(
        dest="action", required=True
    )
    couple_add = with_db(couple.add_parser("add", help="pair two users; prints the couple id"))
    couple_add.add_argument("user_a", type=_uuid)
    couple_add.add_argument("user_b", type=_uuid)
    couple_add.set_defaults(func=cmd_couple_add)

    token = with_db(sub.add_parser("token", help="print a signed JWT for a user"))
    token.add_argument("user_id", type=_uuid)
    token.add_argument("--ttl", type=_positive, default=3600, help="seconds (default 3600)")
    token.set_defaults(func=cmd_token)

    purge = with_db(
        sub.add_parser(
            "purge",
            help="erase dissolved couples and deleted accounts past "
            "IEUM_DISSOLVED_RETENTION_DAYS (messages, events, uploads); prints what goes",
        )
    )
    purge.add_argument("--dry-run", action="store_true", help="print what would go; erase nothing")
    purge.set_defaults(func=cmd_purge)

    seed = with_db(sub.add_parser("seed", help="create N couples; prints JSON with tokens"))
    seed.add_argument("--couples", type=_positive, required=True)
    seed.add_argument("--ttl", type=_positive, default=86400, help="token lifetime, seconds")
    seed.set_defaults(func=cmd_seed)

    with_server(
        sub.add_parser("demo", help="seed a demo couple, print tokens, serve")
    ).set_defaults(func=cmd_demo)

    # Listed for --help only: main() hands everything after "bench" to bench's own parser.
    bench = sub.add_parser("bench", help="load generator (source tree only; python -m bench)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="run | idle | compare ...")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options, --help included, are bench's own
        args = argparse.Namespace(func=cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        print(f"ieum-chat: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a one-line error rather than a traceback
        if os.environ.get("IEUM_DEBUG"):
            raise
        print(f"ieum-chat: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The ``governance`` console command: the same library code the DAGs run, for people.

Every subcommand takes ``--db-url``, ``--s3-endpoint-url`` (or GOVERNANCE_DB_URL,
GOVERNANCE_S3_ENDPOINT_URL), ``--policy`` and ``--now`` (an ISO 8601 instant; default the current
time), so a question about a given moment is reproducible. Subcommands live one module each in
this package and register themselves through ``register(subparsers, common)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from datetime import UTC, datetime

from governance.errors import GovernanceError
from governance.settings import redact
from governance.windows import WindowError, parse_instant

# Each module defines register(subparsers, common) and sets a ``handler`` default. ``seed`` lives in
# the development-only package governance_dev: registered only where that package is installed.
SUBCOMMAND_MODULES = [
    "governance.cli.policy_cmd",
    "governance_dev.seed_cmd",
    "governance.cli.audit_cmd",
    "governance.cli.sweep_cmd",
    "governance.cli.hold_cmd",
    "governance.cli.evidence_cmd",
    "governance.cli.roles_cmd",
    "governance.cli.breach_cmd",
    "governance.cli.request_cmd",
    "governance.cli.notices_cmd",
    "governance.cli.recipients_cmd",
    "governance.cli.erasure_cmd",  # adds `request erase` to the request group
    "governance.cli.processing_cmd",  # `processing list`; adds `request lift` to the request group
    "governance.cli.replay_cmd",  # `erasure replay` (ERA-1)
    "governance.cli.report_cmd",  # `report` (#13): the period report
]


def _instant(text: str) -> datetime:
    try:
        return parse_instant(text)
    except WindowError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db-url", help="PostgreSQL URL (default: $GOVERNANCE_DB_URL)")
    common.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (default: $GOVERNANCE_S3_ENDPOINT_URL)")
    common.add_argument(
        "--policy", help="policy file (default: $GOVERNANCE_POLICY or include/policies/photo_shop.yaml)"
    )
    common.add_argument(
        "--now",
        type=_instant,
        default=None,
        help="the instant to decide for, ISO 8601 with offset (default: the current time); one ahead of the "
        "wall clock or before the policy applies is refused",
    )
    common.add_argument(
        "--allow-now-override",
        metavar="REASON",
        help="decide for a --now that is refused otherwise; the reason (no personal data) is recorded as evidence",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="governance", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_parser()
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(f"{exc.name}.")):
                continue  # that subcommand (or its package) is not part of this build
            raise
        module.register(subparsers, common)
    return parser


def now_of(args: argparse.Namespace) -> datetime:
    return args.now or datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from governance.cli.guard import guard_now

        guard_now(args)
        return int(args.handler(args) or 0)
    except GovernanceError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The guard every subcommand passes before it runs: its ``--now`` must be one the policy may
decide for (``governance.guards``), or ``--allow-now-override REASON`` lets it through and the
override is recorded as evidence before the command does anything.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from governance.cli.common import connection_of, policy_of
from governance.errors import SettingsError
from governance.guards import RUNBOOK_SECTION, check_now, record_override
from governance.windows import iso


def command_of(args: argparse.Namespace) -> str:
    """The subcommand as typed, e.g. 'hold add'."""
    words = [args.command] + [
        getattr(args, name)
        for name in ("policy_command", "hold_command", "evidence_command", "request_command", "erasure_command")
        if getattr(args, name, None)
    ]
    return " ".join(words)


def guard_now(args: argparse.Namespace) -> None:
    now = getattr(args, "now", None)
    reason = getattr(args, "allow_now_override", None)
    if now is None:
        if reason is not None:
            raise SettingsError(f"--allow-now-override is for a refused --now; give --now too (see {RUNBOOK_SECTION})")
        return
    policy = policy_of(args)
    command = command_of(args)
    problem = check_now(now, policy, override=reason, how="pass --allow-now-override")
    if problem is None or reason is None:
        return
    conn = connection_of(args)
    try:
        run_id = f"now-override/cli-{iso(datetime.now(UTC))}"
        record_override(conn, now=now, reason=reason, command=command, run_id=run_id, policy=policy, problem=problem)
    finally:
        conn.close()
    print(f"warning: {problem}; decided for on purpose (--allow-now-override), recorded as evidence", file=sys.stderr)

"""The CLI's sweep flags offer exactly the engine's choices and defaults (governance.sweep.options),
and the errors the library raises on purpose leave with their own exit code, without a traceback."""

from __future__ import annotations

import pytest

from governance.cli import build_parser, main
from governance.sweep.options import DEFAULT_BATCH_SIZE, PARTITION_COUNTS, STRATEGIES, Options


def sweep_action(dest: str):
    sub = next(a for a in build_parser()._subparsers._group_actions if a.dest == "command")
    return next(a for a in sub.choices["sweep"]._actions if a.dest == dest)


def test_sweep_flags_default_to_the_engines_options():
    args = build_parser().parse_args(["sweep"])
    defaults = Options()
    assert args.batch_size == DEFAULT_BATCH_SIZE == defaults.batch_size
    assert args.strategy == defaults.strategy
    assert args.partition_counts == defaults.partition_counts
    assert args.wait_lock == defaults.lock_wait


def test_sweep_flags_offer_exactly_the_engines_choices():
    assert tuple(sweep_action("strategy").choices) == STRATEGIES
    assert tuple(sweep_action("partition_counts").choices) == PARTITION_COUNTS
    assert f"default {DEFAULT_BATCH_SIZE}" in sweep_action("batch_size").help


def test_a_choice_outside_the_engines_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["sweep", "--partition-counts", "guessed"])
    assert exit_.value.code == 2
    assert "estimated" in capsys.readouterr().err


def test_a_governance_error_leaves_with_its_exit_code_and_no_traceback(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert main(["policy", "check", "--offline", "--policy", str(missing)]) == 2  # PolicyError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: policy file {missing} is invalid") and "cannot read the file" in err
    assert "Traceback" not in err

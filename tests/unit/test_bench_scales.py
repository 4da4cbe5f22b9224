"""bench/run.py's two scales (#14): ``--scale`` sizes the sweeps' measurements, the request and report
measurements follow ``--requests-scale`` (by default ``--scale`` up to 1), and a sample timed one at a
time shrinks below scale 1 but does not grow above it (``Context.sample``)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # as ``python bench/run.py`` runs it: next to harness.py
SPEC = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
run = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(run)

from harness import Context  # noqa: E402


def context(scale: float) -> Context:
    return Context(
        scale, "postgresql:///admin", "postgresql:///run", "run", "http://s3", datetime(2026, 12, 4, tzinfo=UTC), None
    )


@pytest.mark.parametrize(
    ("argv", "scale", "requests"),
    [
        (["--scale", "10"], 10.0, 1.0),
        (["--scale", "0.05"], 0.05, 0.05),
        (["--scale", "1"], 1.0, 1.0),
        (["--scale", "10", "--requests-scale", "10"], 10.0, 10.0),
        (["--scale", "4", "--requests-scale", "0.5"], 4.0, 0.5),
    ],
)
def test_the_request_measurements_follow_their_own_scale(argv, scale, requests):
    args = run.parse_args(argv)
    assert (args.scale, args.requests_scale) == (scale, requests)


def test_a_requests_scale_that_is_not_positive_is_refused(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--requests-scale", "0"])
    assert "--requests-scale must be positive" in capsys.readouterr().err


def test_a_request_measurement_runs_at_its_scale_and_shares_the_runs_set_up_times():
    ctx = context(10)
    for name in run.REQUESTS:
        sized = run.context_for(ctx, name, 1.0)
        assert sized.scale == 1.0 and sized.size(1_000_000) == 1_000_000
        assert sized.setup is ctx.setup and sized.log_lines is ctx.log_lines
    for name in ("audit", "visits", "orders", "objects", "memory", "airflow"):
        assert run.context_for(ctx, name, 1.0) is ctx
    assert set(run.REQUESTS) <= set(run.MEASUREMENTS)


def test_a_sample_shrinks_below_scale_one_and_stays_put_above_it():
    assert context(10).sample(2_000, 200) == 2_000
    assert context(10).size(2_000, 200) == 20_000
    assert context(0.05).sample(2_000, 200) == 200
    assert context(0.5).sample(2_000, 200) == 1_000

"""The retry policies of the sweep, one per layer, innermost first.

- **batch** (``retry_transient``): a batch transaction that met the shop's locks or its own
  statement timeout (PostgreSQL ``LockNotAvailable``, ``QueryCanceled``, ``DeadlockDetected``,
  ``SerializationFailure``) is rolled back and run again: ``BATCH_RETRIES`` retries with
  exponential backoff from ``BATCH_BACKOFF_SECONDS`` (tenacity), then ``BatchFailed``. A batch
  run under a time limit (``Options.batch_time_limit``) is not retried at its size: it raises
  ``BatchOverTime`` and its strategy cuts it in half (``governance.sweep.strategies.kept``).
- **pass** (``MAX_PASSES``): a rule whose verification still finds due rows (rows changed under
  the pass, or became governed by it because another rule removed what their clock hung on) is
  swept again, at most this many passes in all, then ``VerifyFailed``.
- **settle** (``SETTLE_ROUNDS``): after every rule ran, rules with new due records are planned and
  swept again, at most this many rounds, then ``SweepError``.
- **task**: Airflow's own task retries (``retries`` and backoff in the DAG) run the whole rule
  again when the error is ``retryable``; nothing here repeats that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg2.errors
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from governance.errors import GovernanceError

T = TypeVar("T")

TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    psycopg2.errors.LockNotAvailable,
    psycopg2.errors.QueryCanceled,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.SerializationFailure,
)
BATCH_RETRIES = 3
BATCH_BACKOFF_SECONDS = 0.2  # then 0.4, 0.8
MAX_PASSES = 3
SETTLE_ROUNDS = 3


def retry_transient(attempt: Callable[[], T], give_up: Callable[[Exception], GovernanceError]) -> T:
    """Run ``attempt`` (one whole transaction, rolled back when it raises) under the batch policy;
    when every try met a transient error, raise ``give_up(last error)`` instead."""
    retrying = Retrying(
        retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
        stop=stop_after_attempt(BATCH_RETRIES + 1),
        wait=wait_exponential(multiplier=BATCH_BACKOFF_SECONDS),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TRANSIENT_DB_ERRORS as exc:
        raise give_up(exc) from None

"""The Evidence view's entries per kind (#13, ``chain.evidence_status``) are counted once per
process and then only past the cached head: they must equal a full count after more appends, and
a different chain under the same connection (a database recreated) must be counted afresh."""

from __future__ import annotations

import pytest

from governance import evidence
from governance.compliance import chain
from governance.db import transaction

pytestmark = pytest.mark.integration


def full_count(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT kind, count(*) FROM governance.evidence GROUP BY kind ORDER BY kind")
        counts = {k: int(n) for k, n in cur.fetchall()}
    conn.rollback()
    return counts


def status(conn) -> chain.EvidenceStatus:
    with transaction(conn, read_only=True) as cur:
        return chain.evidence_status(cur)


def test_counts_per_kind_stay_equal_to_a_full_count(conn):
    chain._KIND_COUNTS.clear()
    with transaction(conn) as cur:
        evidence.append(cur, kind="audit", run_id="kc-1", counts={"overdue_total": 0})
    first = status(conn)
    assert first.per_kind == full_count(conn) and first.entries == sum(full_count(conn).values())
    cached_upto = chain._KIND_COUNTS[str(conn.dsn)][0]
    assert cached_upto == first.head_entry_id

    with transaction(conn) as cur:
        for n in range(3):
            evidence.append(cur, kind="sweep_rule", run_id=f"kc-2-{n}", rule_id="visit-data", counts={"deleted": n})
    second = status(conn)
    assert second.per_kind == full_count(conn)
    assert second.per_kind.get("sweep_rule", 0) == first.per_kind.get("sweep_rule", 0) + 3
    assert chain._KIND_COUNTS[str(conn.dsn)][0] == second.head_entry_id


def test_a_different_chain_under_the_same_connection_is_counted_afresh(conn):
    head = status(conn).head_entry_id
    assert head is not None
    # as if the database had been recreated: the cached id now holds another entry
    chain._KIND_COUNTS[str(conn.dsn)] = (head, "0" * 64, {"made_up": 10**6})
    assert status(conn).per_kind == full_count(conn)

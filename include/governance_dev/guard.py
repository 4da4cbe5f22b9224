"""The seed's guard against wiping data it did not write (issue #9): a marker in the database and
a tag on the bucket, checked before anything is emptied.

``governance seed`` empties every shop table, the legal holds, the request ledger (with its answer
addresses and exports) and the uploads and exports prefixes. It does so only to a database that is
empty or carries the seed's marker (``governance_seed.seeded``, written in the seed's own
transaction), and to a prefix that is empty or in a bucket the seed has tagged; anything else is refused with ``SeedRefused`` unless ``force`` is given. Messages name the database
and the bucket, never a password or a row's content.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import botocore.exceptions
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.errors import GovernanceError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MARKER_SCHEMA = "governance_seed"
MARKER_TABLE = "seeded"
BUCKET_TAG = "governance-seed"  # value: the prefix the seed writes under
FORCE_HINT = "point it at a scratch one, or pass --force (seed(force=True)) to replace what is there"


class SeedRefused(GovernanceError):
    """The seed would empty data it did not write; nothing was changed."""

    exit_code = 2


def database_label(conn: connection) -> str:
    """The database as a URL without its password (built from the connection, not the DSN given)."""
    info = conn.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def foreign_tables(cur: cursor, tables: list[str]) -> list[str]:
    """The tables (``schema.name``) that hold at least one row, when the seed's marker is absent."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{MARKER_SCHEMA}.{MARKER_TABLE}",))
    row = cur.fetchone()
    if row is not None and row[0]:
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(MARKER_SCHEMA, MARKER_TABLE)))
        marked = cur.fetchone()
        if marked is not None and marked[0]:
            return []
    probes = [
        sql.SQL("CASE WHEN EXISTS (SELECT 1 FROM {}) THEN {} END").format(
            sql.Identifier(*table.split(".", 1)), sql.Literal(table)
        )
        for table in tables
    ]
    cur.execute(sql.SQL("SELECT array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(probes)))
    found = cur.fetchone()
    return list(found[0]) if found is not None else []


def check_database(conn: connection, cur: cursor, tables: list[str], *, force: bool) -> None:
    """Refuse a database whose ``tables`` hold rows the seed did not write (no marker), unless forced."""
    if force:
        return
    foreign = foreign_tables(cur, tables)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise SeedRefused(
            f"refusing to seed {database_label(conn)}: it holds rows that governance seed did not write "
            f"(in {shown}), and seeding empties every shop table, the legal holds and the requests; {FORCE_HINT}"
        )


def mark_database(cur: cursor, *, as_of: datetime, customers: int, seed: int) -> None:
    """Record, in the seed's transaction, that the seed wrote this database's shop."""
    marker = sql.Identifier(MARKER_SCHEMA, MARKER_TABLE)
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(MARKER_SCHEMA)))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (seeded_at timestamptz NOT NULL DEFAULT now(), "
            "as_of timestamptz NOT NULL, customers integer NOT NULL, seed bigint NOT NULL)"
        ).format(marker)
    )
    cur.execute(sql.SQL("DELETE FROM {}").format(marker))
    cur.execute(
        sql.SQL("INSERT INTO {} (as_of, customers, seed) VALUES (%s, %s, %s)").format(marker),
        (as_of, customers, seed),
    )


def _tags(s3: S3Client, bucket: str) -> dict[str, str]:
    try:
        tag_set = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchTagSet":
            return {}
        raise
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def check_prefix(s3: S3Client, bucket: str, prefix: str, *, force: bool) -> None:
    """Refuse a non-empty prefix in a bucket the seed has not tagged as its own, unless forced."""
    if force:
        return
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    if not listing.get("KeyCount") or _tags(s3, bucket).get(BUCKET_TAG) == prefix:
        return
    raise SeedRefused(
        f"refusing to seed s3://{bucket}/{prefix}: it holds objects that governance seed did not write, "
        f"and seeding empties that prefix; {FORCE_HINT}"
    )


def claim_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    """Tag the bucket as the seed's for ``prefix`` (other tags are kept), before anything is written."""
    tags = _tags(s3, bucket)
    if tags.get(BUCKET_TAG) == prefix:
        return
    tags[BUCKET_TAG] = prefix
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})

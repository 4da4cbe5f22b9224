"""The export archive (ACC-1, POR-1, TP-4, SEC-3) against moto's S3 server, a real PostgreSQL and
a real SMTP server: rows read from the shop's tables through server-side cursors, objects copied
from the uploads bucket, the ZIP streamed into the exports bucket and read back.

The oracle for the records is PostgreSQL itself: the exported JSON is loaded back with
``jsonb_populate_recordset`` and the CSV with ``COPY ... (FORMAT csv)`` into the tables' own row
types, and compared with the original rows both ways (``EXCEPT``), so every type (numeric,
timestamptz, inet, uuid, jsonb, char(n)) must come back exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import botocore.exceptions
import pytest
from psycopg2 import sql

from governance.breach import SmtpServer
from governance.errors import ExportFailed
from governance.exports import (
    ObjectExport,
    Summary,
    TableExport,
    presigned_link,
    send_link,
    write_export,
)
from governance.exports.upload import MIN_PART_SIZE, PART_SIZE
from governance.person.columns import Column
from governance.policy import load_policy

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
UPLOADS = "shop-uploads"
EXPORTS = "governance-exports"
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "exports/request-7/export-7.zip"
TABLES = {"shop.accounts": "CAT-2", "shop.orders": "CAT-3", "shop.visits": "CAT-1"}
KEYS = {"shop.accounts": "account_id", "shop.orders": "order_id", "shop.visits": "visit_id"}
ADDRESS = "ærlige.åse@example.no"
MAILBOX = "aase.ostby@example.no"


class CursorRows:
    """A table's rows through a new server-side cursor each time it is iterated (as the finder does)."""

    def __init__(self, conn, table: str, columns: list[Column]):
        self.conn, self.table, self.columns, self.opened = conn, table, columns, 0

    def __iter__(self):
        self.opened += 1
        schema, name = self.table.split(".")
        query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in self.columns), sql.Identifier(schema, name)
        )
        with self.conn.cursor(name=f"export_{name}_{self.opened}") as cur:
            cur.itersize = 2
            cur.execute(query)
            yield from cur


def columns_of(conn, table: str) -> list[Column]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,),
        )
        return [Column(name, type_name) for name, type_name in cur.fetchall()]


@pytest.fixture
def shop(conn):
    """Records of several types: NULLs, Norwegian letters, commas, quotes and newlines in text,
    jsonb objects and arrays, numeric, timestamptz with microseconds and offsets, inet, uuid."""
    with conn.cursor() as cur:
        cur.execute("TRUNCATE shop.accounts, shop.orders, shop.visits CASCADE")
        cur.execute(
            "INSERT INTO shop.accounts (account_id, email, password_hash, first_name, last_name, preferences, "
            "other_info, created_at, deleted_at) VALUES "
            "(1, %s, 'pbkdf2$x', 'Åse', 'Ærlig-Østby', %s, %s, '2024-02-29 23:59:59.999999+01', NULL), "
            "(2, 'b@example.no', 'h', NULL, NULL, '{}', NULL, '2025-01-01 00:00:00+00', '2025-06-01 12:00:00+00')",
            (
                ADDRESS,
                json.dumps({"språk": "nb", "nyhetsbrev": True, "tall": [1, 2.5, None], "sitat": 'a "b", c'}),
                'linje 1, med komma\nlinje 2 med "sitat"\r\nlinje 3; æøå ÆØÅ',
            ),
        )
        cur.execute(
            "INSERT INTO shop.orders (order_id, account_id, email, first_name, delivery_street, delivery_city, "
            "total_amount, currency, placed_at) VALUES "
            "(10, 1, %s, 'Åse', 'Storgata 1, 3. etg', 'Tromsø', 1234.50, 'NOK', '2025-03-05 14:07:09.123456+02'), "
            "(11, NULL, 'gjest@example.no', NULL, NULL, NULL, 0.01, 'EUR', '2025-03-06 00:00:00+00'), "
            "(12, 1, %s, '\"Quoted\", name', NULL, 'Bodø', 99999999.99, 'SEK', '2025-12-31 23:59:59+00')",
            (ADDRESS, ADDRESS),
        )
        cur.execute(
            "INSERT INTO shop.visits (visit_id, session_key, ip_address, country, region, language, basket, "
            "started_at, last_activity_at) VALUES "
            "(100, '3f2b1c9e-8d7a-4e6f-9a0b-1c2d3e4f5a6b', '192.0.2.17', 'NO', 'Troms og Finnmark', 'nb', "
            "'[{\"sku\": \"fotobok\", \"antall\": 2}]', '2026-02-28 10:00:00+00', '2026-02-28 10:30:00+00'), "
            "(101, '00000000-0000-4000-8000-000000000001', '2001:db8::1', NULL, NULL, NULL, '[]', "
            "'2026-02-28 11:00:00+00', '2026-02-28 11:00:01+00')"
        )
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    yield conn
    conn.rollback()


def table_exports(conn) -> list[TableExport]:
    exports = []
    for table, category in TABLES.items():
        columns = columns_of(conn, table)
        exports.append(TableExport(table, category, KEYS[table], columns, CursorRows(conn, table, columns)))
    return exports


@pytest.fixture
def buckets(s3):
    for bucket in (UPLOADS, EXPORTS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    return s3


def put_objects(s3) -> dict[str, tuple[str, bytes]]:
    """Archive path -> (key, bytes): a photo, a text with Norwegian letters, a 6 MiB binary."""
    made = {
        "files/shop.uploads/1/ferie på Lofoten.jpg": ("uploads/1/a1.jpg", b"\xff\xd8\xff\xe0" + os.urandom(300_000)),
        "files/shop.uploads/2/hilsen.txt": ("uploads/1/a2.txt", "Kjære bestemor, æøå ÆØÅ\n".encode() * 50),
        "files/shop.uploads/3/stor.bin": ("uploads/1/a3.bin", os.urandom(6 * 1024 * 1024 + 123)),
    }
    types = {".jpg": "image/jpeg", ".txt": "text/plain; charset=utf-8", ".bin": "application/octet-stream"}
    for path, (key, body) in made.items():
        s3.put_object(Bucket=UPLOADS, Key=key, Body=body, ContentType=types[Path(path).suffix])
    return made


def no_upload_left(s3) -> bool:
    return not s3.list_multipart_uploads(Bucket=EXPORTS).get("Uploads")


def export(s3, conn, objects, **kwargs):
    return write_export(
        s3,
        bucket=EXPORTS,
        key=KEY,
        tables=table_exports(conn),
        objects=[ObjectExport(path, UPLOADS, key) for path, (key, _) in objects.items()],
        summary=Summary.from_policy(POLICY),
        package_name="request-7",
        created_at=CREATED,
        part_size=MIN_PART_SIZE,
        **kwargs,
    )


def same_rows(conn, table: str, loaded: str) -> None:
    """The rows in ``loaded`` (a temporary table) are exactly those of ``table``, both ways."""
    with conn.cursor() as cur:
        for left, right in ((table, loaded), (loaded, table)):
            cur.execute(f"SELECT count(*) FROM (SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right}) d")  # noqa: S608
            assert cur.fetchone()[0] == 0, f"{left} has rows {right} has not"
        cur.execute(f"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM {loaded})")  # noqa: S608
        total, back = cur.fetchone()
        assert total == back > 0


def test_the_archive_holds_the_records_objects_descriptor_summary_and_manifest(buckets, shop, tmp_path):
    s3, conn = buckets, shop
    objects = put_objects(s3)
    result = export(s3, conn, objects)

    head = s3.head_object(Bucket=EXPORTS, Key=KEY)
    assert head["ServerSideEncryption"] == "AES256"  # SEC-3: encrypted at rest
    assert head["ContentLength"] == result.byte_size and head["ContentType"] == "application/zip"
    archive = s3.get_object(Bucket=EXPORTS, Key=KEY)["Body"].read()
    assert hashlib.sha256(archive).hexdigest() == result.sha256
    assert no_upload_left(s3)

    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert zipped.testzip() is None  # every member's CRC-32
        names = zipped.namelist()
        zipped.extractall(tmp_path)
    assert names == [
        "data/shop.accounts.json",
        "data/shop.accounts.csv",
        "data/shop.orders.json",
        "data/shop.orders.csv",
        "data/shop.visits.json",
        "data/shop.visits.csv",
        *objects,
        "LESMEG.txt",
        "README.txt",
        "datapackage.json",
        "manifest.json",
    ]
    assert result.file_count == len(names)

    # Photos and texts: the original bytes.
    for path, (_, body) in objects.items():
        assert (tmp_path / path).read_bytes() == body, path

    # Records: exactly the rows, in both files, as PostgreSQL reads them back.
    with conn.cursor() as cur:
        for table in TABLES:
            name = table.split(".")[1]
            cur.execute(f"CREATE TEMP TABLE json_{name} AS SELECT * FROM {table} WHERE false")  # noqa: S608
            cur.execute(
                f"INSERT INTO json_{name} SELECT * FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)",  # noqa: S608
                ((tmp_path / f"data/{table}.json").read_text(encoding="utf-8"),),
            )
            cur.execute(f"CREATE TEMP TABLE csv_{name} AS SELECT * FROM {table} WHERE false")  # noqa: S608
            with (tmp_path / f"data/{table}.csv").open(encoding="utf-8", newline="") as csv_file:
                cur.copy_expert(f"COPY csv_{name} FROM STDIN WITH (FORMAT csv, HEADER true)", csv_file)
    for table in TABLES:
        name = table.split(".")[1]
        same_rows(conn, table, f"json_{name}")
        same_rows(conn, table, f"csv_{name}")

    # Values as Table Schema reads them: instants in UTC with Z, exact decimals, JSON as JSON.
    orders = json.loads((tmp_path / "data/shop.orders.json").read_text(encoding="utf-8"), parse_float=Decimal)
    assert orders[0]["placed_at"] == "2025-03-05T12:07:09.123456Z"
    assert orders[0]["total_amount"] == Decimal("1234.50") and orders[1]["first_name"] is None
    accounts = json.loads((tmp_path / "data/shop.accounts.json").read_text(encoding="utf-8"))
    assert accounts[0]["preferences"]["språk"] == "nb" and accounts[0]["created_at"] == "2024-02-29T22:59:59.999999Z"
    csv_text = (tmp_path / "data/shop.orders.csv").read_text(encoding="utf-8")
    assert '"""Quoted"", name"' in csv_text and ",1234.50,NOK," in csv_text

    check_descriptor(tmp_path, result)
    check_manifest(tmp_path, result, names)
    check_summary(tmp_path)


def check_descriptor(root: Path, result) -> None:
    from frictionless import Package, validate

    report = validate(str(root / "datapackage.json"))
    assert report.valid, report.flatten(["taskName", "rowNumber", "fieldName", "type", "note"])
    package = Package(str(root / "datapackage.json"))
    tabular = {r.name: r for r in package.resources if r.path.endswith(".csv")}
    assert set(tabular) == set(TABLES)
    orders = tabular["shop.orders"].schema
    assert orders.primary_key == ["order_id"]
    types = {f.name: f.type for f in orders.fields}
    assert types["order_id"] == "integer" and types["total_amount"] == "number"
    assert types["placed_at"] == "datetime" and types["currency"] == "string"
    visits = {f.name: (f.type, f.format) for f in tabular["shop.visits"].schema.fields}
    assert visits["basket"] == ("array", "default") and visits["session_key"] == ("string", "uuid")
    assert visits["ip_address"] == ("string", "default")
    assert {f.name: f.type for f in tabular["shop.accounts"].schema.fields}["preferences"] == "object"
    rows = tabular["shop.orders"].read_rows()
    assert [r["total_amount"] for r in rows] == [Decimal("1234.50"), Decimal("0.01"), Decimal("99999999.99")]
    described = {r.path: r for r in package.resources}
    for path, sha in result.manifest.items():
        if path != "datapackage.json":
            assert described[path].hash == f"sha256:{sha}", path


def check_manifest(root: Path, result, names: list[str]) -> None:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f for f in manifest["files"]}
    assert list(listed) == names[:-1] and manifest["algorithm"] == "sha256"
    for path, entry in listed.items():
        data = (root / path).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert result.manifest[path] == entry["sha256"]


def check_summary(root: Path) -> None:
    nb = (root / "LESMEG.txt").read_text(encoding="utf-8")
    en = (root / "README.txt").read_text(encoding="utf-8")
    assert "shop.orders: 3 poster" in nb and "shop.accounts: 2 poster" in nb and "(3 filer)" in nb
    assert "shop.orders: 3 records" in en and "shop.visits: 2 records" in en
    assert "Delivery carrier" in en and "2 years (P2Y)" in en and "2 år (P2Y)" in nb
    assert ADDRESS not in nb + en


def test_a_missing_object_aborts_the_upload_and_leaves_nothing(buckets, shop):
    s3, conn = buckets, shop
    objects = put_objects(s3)
    objects["files/shop.uploads/9/Ola Nordmann.jpg"] = ("uploads/1/gone.jpg", b"")  # never stored
    with pytest.raises(ExportFailed) as failed:
        export(s3, conn, objects)
    message = str(failed.value)
    assert "object 4 (bucket shop-uploads) failed (NoSuchKey)" in message and "nothing was stored" in message
    assert "Ola" not in message and "gone.jpg" not in message
    assert failed.value.retryable is False
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=EXPORTS, Key=KEY)
    assert no_upload_left(s3)


def test_rows_that_can_be_read_only_once_are_refused(buckets, shop):
    s3, conn = buckets, shop
    columns = columns_of(conn, "shop.orders")
    once = TableExport("shop.orders", "CAT-3", "order_id", columns, iter(CursorRows(conn, "shop.orders", columns)))
    with pytest.raises(TypeError, match="one-shot iterator"):
        write_export(
            s3, bucket=EXPORTS, key=KEY, tables=[once], objects=[], summary={}, package_name="r", created_at=CREATED
        )
    assert no_upload_left(s3)


def test_rows_that_change_between_the_passes_are_refused(buckets):
    s3 = buckets

    class Shrinking:
        def __init__(self):
            self.rows = [(1,), (2,)]

        def __iter__(self):
            yield from self.rows
            self.rows = self.rows[:1]

    table = TableExport("shop.orders", "CAT-3", "order_id", [Column("order_id", "bigint")], Shrinking())
    with pytest.raises(ExportFailed, match="2 row.s. in the JSON pass but 1 in the CSV pass"):
        write_export(
            s3, bucket=EXPORTS, key=KEY, tables=[table], objects=[], summary={}, package_name="r", created_at=CREATED
        )
    assert no_upload_left(s3)


def test_the_presigned_link_downloads_the_archive_over_http(buckets, shop):
    s3, conn = buckets, shop
    result = export(s3, conn, put_objects(s3))
    url = presigned_link(s3, EXPORTS, KEY)
    assert "X-Amz-Expires=604800" in url  # 7 days
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the test's own endpoint
        body = response.read()
        assert 'filename="export-7.zip"' in response.headers["Content-Disposition"]
    assert hashlib.sha256(body).hexdigest() == result.sha256
    with pytest.raises(ValueError, match="between 1 second and 7 days"):
        presigned_link(s3, EXPORTS, KEY, expires=timedelta(days=8))


@pytest.fixture
def smtp(smtp_inbox):
    port = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"]
    return SmtpServer(host="127.0.0.1", port=port, timeout=10), smtp_inbox


def test_the_link_mail_carries_the_link_and_nothing_personal(smtp):
    server, inbox = smtp
    url = (
        "http://127.0.0.1:9/governance-exports/exports/request-7/export-7.zip?X-Amz-Signature=abc&X-Amz-Expires=604800"
    )
    expires = CREATED + timedelta(days=7)
    send_link(server, to=f" {MAILBOX}\n", url=url, request_id=7, expires_at=expires)
    assert len(inbox) == 1
    message = inbox[0]
    assert message["To"] == MAILBOX
    text = message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")
    assert url in text and "2026-03-08T12:00:00Z" in text and "R-7" in text
    assert "Last den ned her" in text and "Download it here" in text
    assert MAILBOX not in text and "aase" not in text and "aase" not in message["Subject"]


def test_a_mail_server_that_is_down_raises_export_failed_without_the_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ExportFailed) as failed:
        send_link(
            SmtpServer(host="127.0.0.1", port=port, timeout=2), to=ADDRESS, url="u", request_id=7, expires_at=CREATED
        )
    assert "request 7: the download link could not be mailed" in str(failed.value)
    assert ADDRESS not in str(failed.value) and failed.value.retryable
    with pytest.raises(ExportFailed, match="not an e-mail address"):
        send_link(SmtpServer(host="127.0.0.1", port=port), to="nobody", url="u", request_id=7, expires_at=CREATED)


# The export runs in a process of its own: moto's server runs in the test process's threads, and
# tracemalloc there would count the objects it stores.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from datetime import UTC, datetime
    from governance.exports import ObjectExport, write_export
    from governance.objectstore import make_client
    from governance.settings import resolve

    endpoint, count = sys.argv[1], int(sys.argv[2])
    s3 = make_client(resolve(None, endpoint))
    objects = [ObjectExport(f"files/shop.uploads/{i}/p.jpg", "shop-uploads", f"m/{i}.jpg") for i in range(count)]
    s3.head_bucket(Bucket="governance-exports")  # the client's own set-up, before measuring
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = write_export(s3, bucket="governance-exports", key=f"m-{count}.zip", tables=[], objects=objects,
                          summary={"README.txt": "x"}, package_name="m", created_at=datetime(2026, 3, 1, tzinfo=UTC))
    peak = tracemalloc.get_traced_memory()[1] - base
    print(json.dumps({"peak": peak, "bytes": result.byte_size}))
    """
)


def measure(s3_url: str, count: int) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, s3_url, str(count)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_is_flat_in_the_number_of_photos(buckets, s3_url):
    """ACC-1/POR-1 at scale: 200 photos of 256 KiB take hardly more memory than 10, while the archive
    grows 20-fold: the part buffer (8 MiB), a part request's own (about 2 MiB) and the stream's are
    fixed; what grows is the ZIP's central directory and the manifest, about 1 KiB a file."""
    photo = b"\xff\xd8\xff\xe0" + os.urandom(256 * 1024 - 4)
    for i in range(200):
        buckets.put_object(Bucket=UPLOADS, Key=f"m/{i}.jpg", Body=photo, ContentType="image/jpeg")
    small, large = measure(s3_url, 10), measure(s3_url, 200)
    print(f"peak traced memory: 10 photos {small['peak']} B, 200 photos {large['peak']} B")
    assert large["bytes"] > 19 * small["bytes"]
    assert abs(large["peak"] - small["peak"]) < 1.5 * 1024 * 1024, (small, large)  # 190 more photos: 47 MiB
    assert large["peak"] < PART_SIZE + 4 * 1024 * 1024, (small, large)

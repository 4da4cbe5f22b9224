"""The access and portability export (ACC-1, POR-1): one person's records and objects as one ZIP,
streamed into the exports bucket (SSE ``AES256``) with a Frictionless ``datapackage.json``, a
bilingual summary and a SHA-256 manifest, and the presigned link mailed to them.

Modules: ``contents`` (the inputs, the result, archive paths), ``fields`` (PostgreSQL types as Table
Schema fields, values as JSON and CSV text), ``tables`` (a table's JSON and CSV files, streamed),
``datapackage`` (the descriptor), ``summary`` (LESMEG.txt / README.txt), ``upload`` (the
multipart upload that keeps memory flat), ``archive`` (``write_export``), ``delivery`` (the link and
its e-mail). No database access and no Airflow here: the caller finds the records and commits.
"""

from governance.exports.archive import write_export
from governance.exports.contents import ExportResult, ObjectExport, TableExport
from governance.exports.delivery import LINK_LIFETIME, link_message, presigned_link, send_link
from governance.exports.fields import FieldType, field_type, schema_field
from governance.exports.summary import Summary
from governance.exports.upload import PART_SIZE

__all__ = [
    "LINK_LIFETIME",
    "PART_SIZE",
    "ExportResult",
    "FieldType",
    "ObjectExport",
    "Summary",
    "TableExport",
    "field_type",
    "link_message",
    "presigned_link",
    "schema_field",
    "send_link",
    "write_export",
]

"""Handing an export to the person (ACC-1, POR-1): a presigned download link that expires (at
most 7 days, SigV4's limit) and the e-mail that carries it, Norwegian then English, from the
templates under include/templates/, over the same SMTP settings as the breach notices. The
address is only in the envelope and the To header; errors name the request id, never the address.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from string import Template
from typing import TYPE_CHECKING

import botocore.exceptions

from governance.breach.mail import TEMPLATES_DIR, Mailer, SmtpServer
from governance.errors import ExportFailed
from governance.person.subject import EMAIL_SHAPE
from governance.windows import iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LINK_LIFETIME = timedelta(days=7)
MAX_LINK_LIFETIME = timedelta(days=7)  # a SigV4 presigned URL lives at most 604800 seconds


def presigned_link(s3: S3Client, bucket: str, key: str, *, expires: timedelta = LINK_LIFETIME) -> str:
    """A GET link to the archive that works for ``expires`` and for as long as the client's own
    credentials do (temporary credentials end it sooner); it downloads as the key's file name."""
    seconds = int(expires.total_seconds())
    if not 1 <= seconds <= MAX_LINK_LIFETIME.total_seconds():
        raise ValueError(f"a download link lives between 1 second and {MAX_LINK_LIFETIME.days} days, got {expires}")
    filename = key.rsplit("/", 1)[-1]
    try:
        return s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{filename}"'},
            ExpiresIn=seconds,
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise ExportFailed(f"export {key}: no download link could be signed ({type(exc).__name__})") from None


def link_message(*, url: str, request_id: int, expires_at: datetime) -> tuple[str, str]:
    """The subject and body of the link e-mail: the Norwegian text, then the English one."""
    values = {"url": url, "expires_at": iso(expires_at), "reference": f"R-{request_id}"}
    parts = [
        Template((TEMPLATES_DIR / f"export_link.{lang}.txt").read_text(encoding="utf-8")).substitute(values)
        for lang in ("nb", "en")
    ]
    subject = f"Dine personopplysninger er klare / Your personal data is ready (R-{request_id})"
    return subject, "\n\n---\n\n".join(part.strip() for part in parts) + "\n"


def send_link(smtp: SmtpServer, *, to: str, url: str, request_id: int, expires_at: datetime) -> None:
    """Mail the download link to ``to``; raises ExportFailed (retryable while the server may come
    back) naming the request, not the address."""
    if not EMAIL_SHAPE.match(to.strip()):
        error = ExportFailed(f"request {request_id}: the address to answer to is not an e-mail address; correct it")
        error.retryable = False
        raise error
    subject, body = link_message(url=url, request_id=request_id, expires_at=expires_at)
    try:
        with Mailer(smtp) as mail:
            mail.send(to.strip(), subject, body)
    except (smtplib.SMTPException, OSError) as exc:
        raise ExportFailed(
            f"request {request_id}: the download link could not be mailed ({_cause(exc)}); the export is kept, "
            "send the link again"
        ) from None


def _cause(exc: BaseException) -> str:
    """What went wrong, without the server's text (a refusal may quote the address)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    return type(exc).__name__

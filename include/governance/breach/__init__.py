"""Personal-data breaches (SEC-2, policy art. 6; GDPR art. 33/34): the ledger, the people concerned
found from the data map, the notices sent to them and the authority deadline tracked for on-call.
"""

from governance.breach.ledger import (
    Breach,
    close_breach,
    format_breaches,
    get_breach,
    list_breaches,
    notify_authority,
    open_breach,
)
from governance.breach.mail import SmtpServer
from governance.breach.notices import Batch, deadline_alerts, send_notices, settle

__all__ = [
    "Batch",
    "Breach",
    "SmtpServer",
    "close_breach",
    "deadline_alerts",
    "format_breaches",
    "get_breach",
    "list_breaches",
    "notify_authority",
    "open_breach",
    "send_notices",
    "settle",
]

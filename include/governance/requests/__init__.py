"""Data-subject requests (REQ-1; ACC-1, POR-1 and the rights of policy art. 5): the ledger of
requests and their state machine (``ledger``), intake (``intake``), reading and evidencing
(``store``), and the one-month deadline and its alerts (``deadlines``)."""

from governance.requests.deadlines import DUE_SOON, DeadlineAlerts, alert_message, check_deadlines, mail_alert
from governance.requests.ledger import (
    complete,
    contact,
    extend,
    fetch,
    list_requests,
    open_request,
    refuse,
    start,
    verify,
    withdraw,
    workable,
)
from governance.requests.model import (
    CHANNELS,
    CLOSED_STATES,
    KIND_REQUIREMENTS,
    KINDS,
    OPEN_STATES,
    VERIFICATION_METHODS,
    Contact,
    SubjectRequest,
)

__all__ = [
    "CHANNELS",
    "CLOSED_STATES",
    "DUE_SOON",
    "KINDS",
    "KIND_REQUIREMENTS",
    "OPEN_STATES",
    "VERIFICATION_METHODS",
    "Contact",
    "DeadlineAlerts",
    "SubjectRequest",
    "alert_message",
    "check_deadlines",
    "complete",
    "contact",
    "extend",
    "fetch",
    "list_requests",
    "mail_alert",
    "open_request",
    "refuse",
    "start",
    "verify",
    "withdraw",
    "workable",
]

"""A delivery process for the crash tests (TP-5): run as a subprocess and killed with SIGKILL.

``python -m tests.integration.notice_crash_worker DB_URL WEBHOOK_URL MODE NOW`` with the signing
secret in ``GOVERNANCE_SECRET_CRASH_HOOK``. MODE ``claim-then-die``: claim the due notices (the
first half of a delivery) and SIGKILL itself before sending. MODE ``deliver``: the real
``deliver_due``; the test's receiver kills this process when the request arrives, so it dies
between send and record.
"""

from __future__ import annotations

import os
import signal
import sys

from governance.db import connect
from governance.notices.delivery import deliver_due
from governance.notices.delivery_claim import claim
from governance.notices.delivery_send import Channels
from governance.notices.secrets import EnvSecrets
from governance.policy import load_policy
from governance.policy.notify import Notify
from governance.windows import parse_instant

CONN_ID = "crash_hook"


def policy_for(url: str):  # type: ignore[no-untyped-def]
    base = load_policy()
    notify = Notify.model_validate({"webhook": {"url": url, "signing_secret_conn": CONN_ID}})
    recipients = [r.model_copy(update={"notify": notify}) for r in base.recipients if r.id == "delivery-carrier"]
    return base.model_copy(update={"recipients": recipients})


def main() -> None:
    db_url, url, mode, now_text = sys.argv[1:5]
    policy = policy_for(url)
    now = parse_instant(now_text)
    conn = connect(db_url)
    if mode == "claim-then-die":
        claim(conn, policy, now=now, run_id="crash")
        os.kill(os.getpid(), signal.SIGKILL)
    channels = Channels(secrets=EnvSecrets(), timeout=30)
    deliver_due(conn, policy, channels, now=now, run_id="crash")
    print("survived")


if __name__ == "__main__":
    main()

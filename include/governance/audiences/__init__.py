"""The advertising audience export (TP-1, TP-3; MKT-1, OBJ-1, CON-1, RES-1): who is in an audience
(``selection``), the notice before a person's first inclusion (``notify``), the file streamed to
the object-store drop with its manifest and evidence (``stream``, ``export``), and the files
purged after their window (``purge``, RET-9). The DAG
``advertising_audience`` runs them daily; the audit's rights check that no objector is in a file is
``include/sql/audit/rights/objectors_excluded.sql`` (its preparer ``governance.audit.audience_check``).
"""

from governance.audiences.export import Exported, export_audience, keys
from governance.audiences.notify import Notified, notice_message, tell
from governance.audiences.purge import Purged, purge_expired

__all__ = ["Exported", "Notified", "Purged", "export_audience", "keys", "notice_message", "purge_expired", "tell"]

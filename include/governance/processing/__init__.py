"""Switching processing off for one person (RES-1, OBJ-1, MKT-1, CON-1): the processing register
(``register``), the policy's ``switch_off`` changes applied to the person's rows (``switches``),
the restriction's hold on the person's records (``holds``, the RES-1 decision), answering a
restriction, objection or consent withdrawal (``answer``) and lifting a restriction (``lifting``).
"""

from governance.processing.answer import switch_off
from governance.processing.lifting import lift_restriction
from governance.processing.register import Entry, entries

__all__ = ["Entry", "entries", "lift_restriction", "switch_off"]

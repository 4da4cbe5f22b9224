"""Sweep actions, looked up by the policy's ``action.type``: what a batch does to its rows.

- ``delete``: the rows go (``delete.py``);
- ``anonymise``: personal columns overwritten, marker set (``anonymise.py``, RET-8);
- ``purge_objects``: tombstone, objects, then rows (``purge_objects.py``, CAT-5).
"""

from __future__ import annotations

from governance.errors import UnknownChoice
from governance.sweep.actions.anonymise import Anonymise
from governance.sweep.actions.base import Action, Batch
from governance.sweep.actions.delete import Delete
from governance.sweep.actions.purge_objects import PurgeObjects

ACTIONS: dict[str, type[Action]] = {action.name: action for action in (Delete, Anonymise, PurgeObjects)}

__all__ = ["ACTIONS", "Action", "Batch", "action_named"]


def action_named(name: str) -> type[Action]:
    """The action class of that name; an unknown name is an ``UnknownChoice`` listing the valid ones."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownChoice("sweep action", name, list(ACTIONS)) from None

"""Erasure of a verified person (ERA-1, #11): the plan per store (``plan``), the records found
before anything goes (``work``), the set-based batches (``batches``, ``objects``), the erasure
(``erase``), its independent check (``check``) and the request's answer (``answer``)."""

from governance.erasure.answer import answer_erasure, complete_erasure
from governance.erasure.check import ErasureCheck, verify_erasure
from governance.erasure.erase import ErasureOutcome, erase_person, preview

__all__ = [
    "ErasureCheck",
    "ErasureOutcome",
    "answer_erasure",
    "complete_erasure",
    "erase_person",
    "preview",
    "verify_erasure",
]

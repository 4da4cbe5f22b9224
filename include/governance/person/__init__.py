"""A person in the data map: who a data-subject request is about (``subject``) and, from the
policy's declared person columns and links, every record and object of theirs (#10)."""

from governance.person.subject import Subject, resolve_subject

__all__ = ["Subject", "resolve_subject"]

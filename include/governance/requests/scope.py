"""What a request is about beyond its kind, checked at intake against the policy (REQ-1):

- the purposes a restriction (RES-1), objection (OBJ-1, MKT-1) or consent withdrawal (CON-1)
  switches off — the policy's ``purposes:``; none named means every purpose of direct marketing for
  an objection (stopped at once, no reason asked), every purpose resting on consent for a
  withdrawal, every purpose for a restriction;
- an account deletion's choices (RET-7): per category of the person's data, ``keep`` (left under
  its retention rules) or ``delete`` (erased now, ERA-1). Every category a person can hold data in
  must be chosen explicitly: deleting data is never a default. A choice whose deletion would
  destroy or orphan what the person keeps is refused (``check_kept_records``, from the catalogue's
  foreign keys): a kept store that a deleted store's removal would cascade into, or whose only way
  to its person is a column the removal sets to NULL (nobody could find those records again).

Only ids of the policy are stored (``subject_requests.purposes``, ``.choices``), no personal data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg2.extensions import cursor

from governance.errors import RequestError
from governance.person.records import person_stores
from governance.policy import EFFECT_OF_KIND, AnonymiseAction, Policy
from governance.sweep.target import referencing_children

CHOICES = ("keep", "delete")
PLATFORM_SCHEMA = "governance"  # the platform's own copies (CAT-7): not the person's to choose


def choosable_categories(policy: Policy) -> list[str]:
    """The categories an account deletion chooses over: those holding the person's data in the shop
    (a store that reaches a person, outside the platform's own schema), in data-map order."""
    found = [c.id for c, s in person_stores(policy) if not s.table.startswith(f"{PLATFORM_SCHEMA}.")]
    return list(dict.fromkeys(found))


def default_purposes(policy: Policy, kind: str) -> list[str]:
    """What a request of ``kind`` naming no purpose switches off (see the module)."""
    if kind == "objection":
        return [p.id for p in policy.purposes if p.direct_marketing]
    if kind == "consent_withdrawal":
        return [p.id for p in policy.purposes if p.consent]
    return [p.id for p in policy.purposes]


def check_purposes(policy: Policy, kind: str, purposes: Sequence[str] | None) -> list[str]:
    """The purposes the request switches off (sorted, once each); RequestError naming what to fix."""
    if kind not in EFFECT_OF_KIND:
        if purposes:
            raise RequestError(
                f"--purpose applies to {', '.join(sorted(EFFECT_OF_KIND))} requests, not to a {kind} request"
            )
        return []
    known = {p.id: p for p in policy.purposes}
    unknown = sorted({p for p in purposes or () if p not in known})
    if unknown:
        raise RequestError(
            f"--purpose {', '.join(unknown)}: not a purpose of the policy; valid: {', '.join(sorted(known)) or 'none'}"
        )
    chosen = sorted(set(purposes or ())) or default_purposes(policy, kind)
    if not chosen:
        raise RequestError(f"the policy names no purpose a {kind} request can switch off (policy 'purposes:')")
    if kind == "consent_withdrawal":
        not_consent = [p for p in chosen if not known[p].consent]
        if not_consent:
            raise RequestError(
                f"--purpose {', '.join(not_consent)} does not rest on consent (its legal basis is "
                f"{known[not_consent[0]].legal_basis}); a person stops it with an objection request (OBJ-1)"
            )
    return sorted(chosen)


def check_choices(policy: Policy, kind: str, choices: Mapping[str, str] | None) -> dict[str, str]:
    """An account deletion's choices, every choosable category named once; {} for other kinds."""
    if kind != "account_deletion":
        if choices:
            raise RequestError(f"--keep/--delete apply to account_deletion requests, not to a {kind} request")
        return {}
    choosable = choosable_categories(policy)
    given = dict(choices or {})
    bad_value = sorted(c for c, v in given.items() if v not in CHOICES)
    if bad_value:
        raise RequestError(f"category {', '.join(bad_value)}: the choice must be one of {', '.join(CHOICES)}")
    unknown = sorted(set(given) - set(choosable))
    if unknown:
        raise RequestError(
            f"category {', '.join(unknown)} cannot be chosen; the person's categories are {', '.join(choosable)}"
        )
    missing = [c for c in choosable if c not in given]
    if missing:
        raise RequestError(
            f"an account deletion needs a choice for every category of the person's data (RET-7); missing: "
            f"{', '.join(missing)} (give --keep CATEGORY or --delete CATEGORY for each)"
        )
    return {c: given[c] for c in choosable}


def choices_from_flags(keep: Sequence[str] | None, delete: Sequence[str] | None) -> dict[str, str] | None:
    """``--keep`` / ``--delete`` flags as choices; a category named in both is refused."""
    if not keep and not delete:
        return None
    both = sorted(set(keep or ()) & set(delete or ()))
    if both:
        raise RequestError(f"category {', '.join(both)} is given to both --keep and --delete; choose one")
    return {**dict.fromkeys(keep or (), "keep"), **dict.fromkeys(delete or (), "delete")}


def kept_categories(policy: Policy, kind: str, choices: Mapping[str, str]) -> list[str]:
    """The categories a request leaves as they are, sorted: for an account deletion (RET-7) every
    category not chosen ``delete`` (the kept ones, and those not the person's to choose: the
    platform's own copies, CAT-7, stay under RET-9's windows); none for an erasure."""
    if kind != "account_deletion":
        return []
    return sorted(c.id for c in policy.categories if choices.get(c.id) != "delete")


def check_kept_records(cur: cursor, policy: Policy, choices: Mapping[str, str]) -> None:
    """RequestError naming the categories when deleting the ``delete`` ones would change what the
    ``keep`` ones hold through a foreign key (RET-7): a cascade deleting kept rows, or a SET NULL
    of the only column by which a kept store reaches its person. A SET NULL on a kept store that
    also names its person by address is allowed: the records stay findable (an order becomes a
    guest's order, under the same RET-3 clock per address); see docs/requirements.md RET-7."""
    kept = {c.id for c in policy.categories if choices.get(c.id) == "keep"}
    if not kept or not any(v == "delete" for v in choices.values()):
        return
    category_of = {s.table: c.id for c, s in person_stores(policy)}
    anonymised = {
        r.table for r in policy.rules if isinstance(r.action, AnonymiseAction) and r.action.decision == "RET-8"
    }
    problems: list[str] = []
    for category, store in person_stores(policy):
        if choices.get(category.id) != "delete" or store.table in anonymised:
            continue  # kept, or anonymised (RET-8) rather than deleted: nothing cascades
        for child in referencing_children(cur, policy, store.table):
            mine = category_of.get(child.table)
            if mine not in kept:
                continue
            if child.on_delete == "c":
                problems.append(
                    f"deleting {category.id} ({store.table}) would delete the kept {mine} records of "
                    f"{child.table} (ON DELETE CASCADE)"
                )
            elif child.store.person is None or not child.store.person.email:
                problems.append(
                    f"deleting {category.id} ({store.table}) would set {child.table}.{child.column} to NULL, the only "
                    f"way the kept {mine} records reach the person: nobody could find them again"
                )
    if problems:
        raise RequestError(
            f"this account deletion cannot keep what it chose (RET-7): {'; '.join(sorted(set(problems)))}; "
            "keep the deleted category too, or delete the kept one"
        )

"""The export's human-readable summary (ACC-1), in Norwegian (``LESMEG.txt``) and English
(``README.txt``): per category what is held (records per table), why (purpose and legal basis),
how long (the windows of its rules, RET-1..RET-10) and who receives it (the recipients registry,
TP-4). Taken from the policy once (``Summary.from_policy``), rendered with the export's counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from governance.policy import Bilingual, Policy, Recipient
from governance.policy.recipients import Language
from governance.windows import Window, iso

FILENAMES: dict[Language, str] = {"nb": "LESMEG.txt", "en": "README.txt"}

_UNITS: dict[Language, list[tuple[str, str, str]]] = {
    "en": [
        ("years", "year", "years"),
        ("months", "month", "months"),
        ("weeks", "week", "weeks"),
        ("days", "day", "days"),
        ("hours", "hour", "hours"),
        ("minutes", "minute", "minutes"),
        ("seconds", "second", "seconds"),
    ],
    "nb": [
        ("years", "år", "år"),
        ("months", "måned", "måneder"),
        ("weeks", "uke", "uker"),
        ("days", "dag", "dager"),
        ("hours", "time", "timer"),
        ("minutes", "minutt", "minutter"),
        ("seconds", "sekund", "sekunder"),
    ],
}
# GDPR art. 6(1)'s bases as the policy names them in English, in Norwegian.
_BASES_NB = {
    "explicit consent": "eksplisitt samtykke",
    "consent": "samtykke",
    "contract": "gjennomføring av avtalen",
    "legitimate interest": "legitim interesse",
    "legal obligation": "rettslig forpliktelse",
    " or ": " eller ",
    " and ": " og ",
}
_BASES_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(_BASES_NB, key=len, reverse=True)))

_WORDS: dict[Language, dict[str, str]] = {
    "en": {
        "title": "Your personal data",
        "nothing_held": "We hold no personal data about you, apart from your request itself (below, CAT-7).",
        "created": "Export created",
        "policy": "Privacy policy",
        "contents": "This archive holds every record we hold about you, and your photos and texts:",
        "data": "data/<table>.json and .csv: your records, table by table (the same rows in both)",
        "files": "files/: your photos and texts as you uploaded them",
        "datapackage": "datapackage.json: a description another service can load the data with (Frictionless Data Package)",
        "manifest": "manifest.json: the SHA-256 checksum of every file",
        "other": "Den norske teksten står i LESMEG.txt.",
        "held": "What we hold",
        "why": "Why",
        "basis": "Legal basis",
        "long": "How long",
        "who": "Who receives it",
        "none": "none",
        "record": "record",
        "records": "records",
        "file": "file",
        "file_plural": "files",
        "nobody": "nobody outside the shop",
        "unstated": "see the privacy policy",
        "after": "after its period starts, then",
        "rule": "rule",
        "starts": "When each period starts is set out in the privacy policy, article 4.",
        "delete": "deleted",
        "anonymise": "anonymised",
        "purge_objects": "deleted, files included",
        "processor": "processor",
        "controller": "independent controller",
        "joint_controller": "joint controller",
        "outside": "outside the EEA; transfer basis",
    },
    "nb": {
        "title": "Dine personopplysninger",
        "nothing_held": "Vi har ingen personopplysninger om deg, bortsett fra selve forespørselen din (nedenfor, CAT-7).",
        "created": "Eksporten ble laget",
        "policy": "Personvernerklæring",
        "contents": "Dette arkivet inneholder alle opplysningene vi har om deg, og bildene og tekstene dine:",
        "data": "data/<tabell>.json og .csv: opplysningene dine, tabell for tabell (de samme radene i begge)",
        "files": "files/: bildene og tekstene dine slik du lastet dem opp",
        "datapackage": "datapackage.json: en beskrivelse som en annen tjeneste kan lese dataene med (Frictionless Data Package)",
        "manifest": "manifest.json: SHA-256-sjekksummen til hver fil",
        "other": "The English text is in README.txt.",
        "held": "Hva vi har",
        "why": "Hvorfor",
        "basis": "Rettslig grunnlag",
        "long": "Hvor lenge",
        "who": "Hvem som mottar det",
        "none": "ingen",
        "record": "post",
        "records": "poster",
        "file": "fil",
        "file_plural": "filer",
        "nobody": "ingen utenfor butikken",
        "unstated": "se personvernerklæringen",
        "after": "etter at fristen starter, deretter",
        "rule": "regel",
        "starts": "Når hver frist starter, står i personvernerklæringen, artikkel 4.",
        "delete": "slettet",
        "anonymise": "anonymisert",
        "purge_objects": "slettet, filene også",
        "processor": "databehandler",
        "controller": "selvstendig behandlingsansvarlig",
        "joint_controller": "felles behandlingsansvarlig",
        "outside": "utenfor EØS; overføringsgrunnlag",
    },
}


@dataclass(frozen=True)
class RuleWindow:
    """How long one rule keeps a table's records (its window) and what then happens to them."""

    rule_id: str
    table: str
    window: Window
    action: str
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class CategorySummary:
    id: str
    name: str
    legal_basis: str
    purpose: Bilingual | None
    tables: tuple[str, ...]
    windows: tuple[RuleWindow, ...]
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True)
class Summary:
    """What the summary says of each category, from the policy; ``render`` adds the counts."""

    policy_name: str
    policy_version: str
    categories: tuple[CategorySummary, ...]
    # The request's subject matched nobody in the data map (ACC-1: the answer says no data is held).
    nothing_held: bool = False

    @classmethod
    def from_policy(cls, policy: Policy) -> Summary:
        categories = tuple(
            CategorySummary(
                id=c.id,
                name=c.name,
                legal_basis=c.legal_basis,
                purpose=c.purpose,
                tables=tuple(s.table for s in c.stores),
                windows=tuple(
                    RuleWindow(r.id, r.table, policy.window(r), r.action.type, tuple(r.requirements))
                    for r in policy.rules
                    if r.category == c.id
                ),
                recipients=tuple(policy.recipients_of(c.id)),
            )
            for c in policy.categories
        )
        return cls(policy.policy.name, policy.version, categories)

    def render(self, counts: Mapping[str, int], *, files: int, created_at: datetime) -> dict[str, str]:
        """The texts by file name: ``counts`` holds the records exported per table."""
        known = {t for c in self.categories for t in c.tables}
        unknown = sorted(set(counts) - known)
        if unknown:
            raise ValueError(f"tables {unknown} are not in the policy's data map; the summary cannot place them")
        return {FILENAMES[lang]: self._text(lang, counts, files, created_at) for lang in ("nb", "en")}

    def _text(self, lang: Language, counts: Mapping[str, int], files: int, created_at: datetime) -> str:
        w = _WORDS[lang]
        version = f" ({self.policy_version[:12]})" if self.policy_version else ""
        lines = [
            w["title"],
            "=" * len(w["title"]),
            f"{w['created']}: {iso(created_at)}",
            f"{w['policy']}: {self.policy_name}{version}",
            "",
            *([w["nothing_held"], ""] if self.nothing_held else []),
            w["contents"],
            f"  - {w['data']}",
            f"  - {w['files']} ({_count(lang, files, 'file', 'file_plural')})",
            f"  - {w['datapackage']}",
            f"  - {w['manifest']}",
            w["other"],
        ]
        for category in self.categories:
            lines += ["", *_category_lines(lang, category, counts)]
        lines += ["", w["starts"]]
        return "\n".join(lines) + "\n"


def _category_lines(lang: Language, category: CategorySummary, counts: Mapping[str, int]) -> list[str]:
    w = _WORDS[lang]
    held = "; ".join(f"{t}: {_count(lang, counts.get(t, 0), 'record', 'records')}" for t in category.tables)
    purpose = category.purpose.text(lang) if category.purpose is not None else w["unstated"]
    basis = legal_basis(lang, category.legal_basis)
    lines = [f"{category.id}: {category.name}", f"  {w['held']}: {held}", f"  {w['why']}: {purpose}"]
    lines += [f"  {w['basis']}: {basis}", f"  {w['long']}:"]
    for rule in category.windows:
        requirements = ", ".join(rule.requirements)
        lines.append(
            f"    - {rule.table}: {describe_window(lang, rule.window)} ({rule.window.iso}) {w['after']} "
            f"{w[rule.action]} ({w['rule']} {rule.rule_id}; {requirements})"
        )
    lines.append(f"  {w['who']}:" + ("" if category.recipients else f" {w['nobody']}"))
    for r in category.recipients:
        where = r.country if r.transfer_basis is None else f"{r.country}, {w['outside']}: {r.transfer_basis}"
        lines.append(f"    - {r.name} ({w[r.role]}, {where}): {r.purpose.text(lang)}")
    return lines


def describe_window(lang: Language, window: Window) -> str:
    """``P2Y`` as '2 years' / '2 år', ``PT24H`` as '24 hours' / '24 timer'."""
    parts = []
    for attribute, one, many in _UNITS[lang]:
        value = getattr(window, attribute)
        if value:
            parts.append(f"{value} {one if value == 1 else many}")
    return (" og " if lang == "nb" else " and ").join(parts)


def legal_basis(lang: Language, text: str) -> str:
    """The policy's legal basis (written in English), in Norwegian where the words are known."""
    if lang == "en":
        return text
    return _BASES_PATTERN.sub(lambda m: _BASES_NB[m.group(0)], text)


def _count(lang: Language, n: int, one: str, many: str) -> str:
    w = _WORDS[lang]
    return w["none"] if n == 0 else f"{n} {w[one] if n == 1 else w[many]}"

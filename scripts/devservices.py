"""Local services for the demo, the Airflow UI and the benchmark: nothing but PyPI packages.

    python scripts/devservices.py up        start what is missing, write .local/env, print it
    python scripts/devservices.py down      stop what this script started
    python scripts/devservices.py status    what runs, and where
    python scripts/devservices.py airflow   the Airflow UI (``airflow standalone``) over the same services
    python scripts/devservices.py airflow-celery   the same DAGs on the CeleryExecutor: scheduler, DAG
                                            processor, API server, triggerer, two workers (Redis broker)

Defaults, each used only when the matching setting is not given:

- PostgreSQL: an embedded server (pgserver, PostgreSQL 16) with its data in .local/pg, listening
  on a unix socket only, left running between invocations; the demo uses its database ``shop``.
  Given ``GOVERNANCE_DB_URL``, that database is used and no server is started.
- S3: moto's server mode on 127.0.0.1 and a free port (in memory: its objects are gone once it
  stops). Given ``GOVERNANCE_S3_ENDPOINT_URL``, that endpoint is used.
- SMTP: an aiosmtpd sink on 127.0.0.1 that stores every alert as a file under .local/mail, so the
  failure notifier has somewhere to send to.
- Airflow: AIRFLOW_HOME=.airflow with SQLite metadata, the project's dags/ and plugins/, and the
  connections ``governance_db``, ``governance_s3`` and ``governance_smtp`` as AIRFLOW_CONN_* variables.
  ``airflow-celery`` (scripts/celery_stack.py) uses the database ``airflow`` on the same PostgreSQL
  server instead (created if missing; Celery's results too) and Redis as the broker
  (AIRFLOW__CELERY__BROKER_URL, default redis://127.0.0.1:6379/0).

``.local/env`` holds the result as shell assignments (``set -a; . .local/env; set +a``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PGDATA = LOCAL / "pg"
STATE_FILE = LOCAL / "state.json"
ENV_FILE = LOCAL / "env"
MAIL_DIR = LOCAL / "mail"
AIRFLOW_HOME = ROOT / ".airflow"
DEMO_DATABASE = "shop"
REGION = "eu-north-1"  # SEC-3: the EEA; the same default as governance.settings

DB_URL_ENV = "GOVERNANCE_DB_URL"
S3_ENDPOINT_ENV = "GOVERNANCE_S3_ENDPOINT_URL"


# --- small helpers ---------------------------------------------------------------------------


def _load_state() -> dict[str, Any]:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save_state(state: dict[str, Any]) -> None:
    LOCAL.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not serving anything.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def _spawn(name: str, argv: list[str]) -> int:
    """Start a background process in its own session, outliving this script; log to .local/<name>.log."""
    LOCAL.mkdir(exist_ok=True)
    log = open(LOCAL / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    log.close()
    return process.pid


def _wait_for(check, what: str, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not _alive(pid):
            raise SystemExit(f"{what} exited at start; see {LOCAL.relative_to(ROOT)}/{what}.log")
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer within {timeout:.0f} s; see {LOCAL.relative_to(ROOT)}/{what}.log")


def _stop_pid(pid: int | None, what: str) -> None:
    if not _alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)  # the process leads its own session (start_new_session)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    print(f"stopped {what} (pid {pid})")


# --- PostgreSQL -------------------------------------------------------------------------------


def _pgserver():
    # pgserver asks platformdirs for a runtime folder; with XDG_RUNTIME_DIR unset its fallback is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    import pgserver

    return pgserver


def start_postgres() -> str:
    """The embedded server's URL for the database ``shop`` (created if missing)."""
    import psycopg2
    from psycopg2 import sql

    LOCAL.mkdir(exist_ok=True)
    # cleanup_mode=None: the server keeps running after this process exits, for the next command.
    server = _pgserver().get_server(PGDATA, cleanup_mode=None)
    admin_url = server.get_uri()
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DATABASE,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DATABASE)))
    admin.close()
    return server.get_uri(DEMO_DATABASE)


def postgres_running() -> bool:
    if not (PGDATA / "postmaster.pid").exists():
        return False
    try:
        pid = int((PGDATA / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _alive(pid)


def stop_postgres() -> None:
    if not postgres_running():
        return
    pg_ctl = _pgserver()._commands.pg_ctl
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs the server as this user under root
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)
    print(f"stopped the embedded PostgreSQL ({PGDATA.relative_to(ROOT)})")


def recreate_database(db_url: str) -> None:
    """Drop and create the embedded server's demo database: every demo starts from nothing."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(db_url)
    name = params["dbname"]
    params["dbname"] = "postgres"
    admin = psycopg2.connect(make_dsn(**params))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()


# --- moto (S3) and the SMTP sink ---------------------------------------------------------------


def start_moto(state: dict[str, Any]) -> str:
    moto = state.get("moto") or {}
    if _alive(moto.get("pid")) and _http_ok(f"http://127.0.0.1:{moto['port']}/moto-api/"):
        return f"http://127.0.0.1:{moto['port']}"
    port = _free_port()
    pid = _spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    _wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/moto-api/"), "moto", pid)
    state["moto"] = {"pid": pid, "port": port}
    return f"http://127.0.0.1:{port}"


def start_smtp(state: dict[str, Any]) -> int:
    smtp = state.get("smtp") or {}
    if _alive(smtp.get("pid")) and _port_open(smtp["port"]):
        return smtp["port"]
    for sub in ("tmp", "new", "cur"):  # a Maildir; aiosmtpd creates none of it in an existing folder
        (MAIL_DIR / sub).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    pid = _spawn(
        "smtp",
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(MAIL_DIR),
        ],
    )
    _wait_for(lambda: _port_open(port), "smtp", pid)
    state["smtp"] = {"pid": pid, "port": port}
    return port


def reset_moto(endpoint: str) -> None:
    """Empty moto's in-memory store (only ever our own moto server)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.open(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()


# --- the environment -------------------------------------------------------------------------


def airflow_db_connection(db_url: str) -> dict[str, Any]:
    """The Airflow connection (JSON form) for a libpq URL, unix-socket URLs included."""
    from psycopg2.extensions import parse_dsn

    params = parse_dsn(db_url)
    conn: dict[str, Any] = {
        "conn_type": "postgres",
        "host": params.pop("host", "localhost"),
        "port": int(params.pop("port", 5432)),
        "login": params.pop("user", "postgres"),
        "schema": params.pop("dbname", "postgres"),
    }
    password = params.pop("password", "")
    if password:
        conn["password"] = password
    if params:  # sslmode and the like
        conn["extra"] = params
    return conn


def build_env(db_url: str, s3_endpoint: str, smtp_port: int | None) -> dict[str, str]:
    env = {
        DB_URL_ENV: db_url,
        S3_ENDPOINT_ENV: s3_endpoint,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # TP-5: a development key for the recipients' pseudonyms (the sweep's retention_ended notices,
        # the requests' notices); a deployment sets the connection governance_recipient_pseudonym
        "GOVERNANCE_RECIPIENT_PSEUDONYM_KEY": os.environ.get("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY")
        or secrets.token_hex(32),
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW_CONN_GOVERNANCE_DB": json.dumps(airflow_db_connection(db_url)),
        "AIRFLOW_CONN_GOVERNANCE_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "password": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                "extra": {"endpoint_url": s3_endpoint, "region_name": os.environ.get("AWS_DEFAULT_REGION", REGION)},
            }
        ),
    }
    if smtp_port:
        env["AIRFLOW_CONN_GOVERNANCE_SMTP"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1},
            }
        )
    return env


def write_env(env: dict[str, str]) -> None:
    LOCAL.mkdir(exist_ok=True)
    lines = ["# Written by scripts/devservices.py; load with: set -a; . .local/env; set +a"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    ENV_FILE.write_text("\n".join(lines) + "\n")


def up(*, quiet: bool = False) -> dict[str, Any]:
    """Start what is missing; return {"env": {...}, "embedded_db": bool, "embedded_s3": bool}."""
    state = _load_state()
    given_db = os.environ.get(DB_URL_ENV) or ""
    given_s3 = os.environ.get(S3_ENDPOINT_ENV) or ""
    # A URL this script wrote earlier (a shell that loaded .local/env) is not the user's own.
    embedded_db = not given_db or given_db == state.get("db_url")
    embedded_s3 = not given_s3 or given_s3 == state.get("s3_endpoint")

    db_url = start_postgres() if embedded_db else given_db
    s3_endpoint = start_moto(state) if embedded_s3 else given_s3
    smtp_port = start_smtp(state)
    state.update(db_url=db_url if embedded_db else None, s3_endpoint=s3_endpoint if embedded_s3 else None)
    _save_state(state)
    env = build_env(db_url, s3_endpoint, smtp_port)
    write_env(env)
    if not quiet:
        print_summary(env, embedded_db, embedded_s3)
    return {"env": env, "embedded_db": embedded_db, "embedded_s3": embedded_s3}


def print_summary(env: dict[str, str], embedded_db: bool, embedded_s3: bool, *, airflow: bool = True) -> None:
    from governance.settings import redact_url

    smtp = json.loads(env.get("AIRFLOW_CONN_GOVERNANCE_SMTP", "null"))
    print(f"PostgreSQL : {redact_url(env[DB_URL_ENV])}" + ("  (embedded, .local/pg)" if embedded_db else "  (given)"))
    print(f"S3         : {env[S3_ENDPOINT_ENV]}" + ("  (moto server, in memory)" if embedded_s3 else "  (given)"))
    if smtp:
        print(f"SMTP sink  : 127.0.0.1:{smtp['port']}  (alerts land in .local/mail)")
    if airflow:
        print(f"Airflow    : AIRFLOW_HOME={env['AIRFLOW_HOME']} (SQLite)")
    print("Environment: .local/env  (load with: set -a; . .local/env; set +a)")


def down() -> None:
    state = _load_state()
    recorded = state.pop("celery", None)
    if recorded:  # forgotten first: a running `airflow-celery` then knows who stopped its components
        _save_state(state)
        for name in celery_stack().stop_recorded(recorded):
            print(f"stopped the Celery stack's {name}")
    _stop_pid((state.get("moto") or {}).get("pid"), "the moto S3 server")
    _stop_pid((state.get("smtp") or {}).get("pid"), "the SMTP sink")
    stop_postgres()
    state.pop("moto", None)
    state.pop("smtp", None)
    _save_state(state)


def status() -> int:
    state = _load_state()
    moto, smtp = state.get("moto") or {}, state.get("smtp") or {}
    rows = [
        ("postgres (embedded)", postgres_running(), str(PGDATA.relative_to(ROOT))),
        ("moto S3 server", _alive(moto.get("pid")), f"127.0.0.1:{moto.get('port')}" if moto else "-"),
        ("SMTP sink", _alive(smtp.get("pid")), f"127.0.0.1:{smtp.get('port')}" if smtp else "-"),
    ]
    for name, entry in (state.get("celery") or {}).items():
        rows.append((f"celery stack {name}", _alive(entry.get("pid")), f"pid {entry.get('pid')}"))
    for name, running, where in rows:
        print(f"{name:<26} {'running' if running else 'stopped':<8} {where}")
    return 0


# --- Airflow ---------------------------------------------------------------------------------


def run_env(env: dict[str, str]) -> dict[str, str]:
    """The process environment for Airflow and the CLI: ours over the caller's, minus proxies."""
    merged = dict(os.environ)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        merged.pop(proxy, None)
    merged.update(env)
    # `airflow standalone` starts its components as `airflow ...` from PATH: this virtualenv's.
    bin_dir = str(Path(sys.executable).parent)
    merged["PATH"] = os.pathsep.join([bin_dir, *[p for p in merged.get("PATH", "").split(os.pathsep) if p != bin_dir]])
    return merged


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def migrate_airflow(env: dict[str, str], *, quiet: bool = True) -> None:
    """``airflow db migrate`` when the metadata database is new or older than the installed Airflow."""
    AIRFLOW_HOME.mkdir(exist_ok=True)
    stamp = AIRFLOW_HOME / ".migrated"
    version = subprocess.run(
        [sys.executable, "-c", "import airflow; print(airflow.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if (AIRFLOW_HOME / "airflow.db").exists() and stamp.exists() and stamp.read_text().strip() == version:
        return
    if not quiet:
        print("Migrating the Airflow metadata database (first use; SQLite in .airflow/) ...", flush=True)
    result = subprocess.run(
        [venv_bin("airflow"), "db", "migrate"],
        env=run_env(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit("airflow db migrate failed")
    stamp.write_text(version + "\n")


def airflow_login() -> tuple[str, str]:
    """The simple auth manager's admin login, generated once into its own passwords file."""
    path = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    AIRFLOW_HOME.mkdir(exist_ok=True)
    try:
        passwords = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        passwords = {}
    if "admin" not in passwords:
        passwords["admin"] = secrets.token_urlsafe(12)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return "admin", passwords["admin"]


def airflow_standalone(port: int) -> None:
    env = up()["env"]
    env["AIRFLOW__API__PORT"] = str(port)
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    migrate_airflow(env, quiet=False)
    user, password = airflow_login()
    print()
    print(f"Airflow UI : http://127.0.0.1:{port}   login: {user} / {password}")
    print(f"             (the password is kept in {AIRFLOW_HOME.name}/simple_auth_manager_passwords.json.generated)")
    print("Stop with Ctrl-C; `make services-down` stops PostgreSQL, moto and the SMTP sink.")
    print(flush=True)
    os.execve(venv_bin("airflow"), [venv_bin("airflow"), "standalone"], run_env(env))


def celery_stack():
    """scripts/celery_stack.py (a script beside this one, not a package)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import celery_stack

    return celery_stack


def airflow_celery(port: int, broker_url: str) -> int:
    """The DAGs on the CeleryExecutor in the foreground; Ctrl-C (or SIGTERM) stops every component."""
    stack_module = celery_stack()
    running = [name for name, entry in (_load_state().get("celery") or {}).items() if _alive(entry.get("pid"))]
    if running:
        raise SystemExit(f"a Celery stack is already running ({', '.join(running)}); stop it with `make services-down`")
    try:
        stack_module.check_redis(broker_url)
    except stack_module.StackError as exc:
        raise SystemExit(str(exc)) from None
    services = up(quiet=True)
    env = services["env"]
    metadata = stack_module.ensure_database(env[DB_URL_ENV], stack_module.METADATA_DATABASE)
    user, password = airflow_login()
    log_dir = LOCAL / "celery"
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg = stack_module.StackConfig(
        home=AIRFLOW_HOME,
        log_dir=log_dir,
        metadata_dsn=metadata,
        broker_url=broker_url,
        api_port=port,
        base_env=env,
        secrets=stack_module.load_or_create_secrets(AIRFLOW_HOME / "celery_secrets.json"),
    )
    print("Migrating the Airflow metadata database (PostgreSQL, database 'airflow') ...", flush=True)
    try:
        stack = stack_module.start(cfg)
    except stack_module.StackError as exc:
        raise SystemExit(str(exc)) from None
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C, `kill`, the terminal closed
        signal.signal(signum, _interrupt)
    try:
        state = _load_state()
        state["celery"] = stack.pids()
        _save_state(state)
        print("Starting the scheduler, DAG processor, API server, triggerer and 2 Celery workers ...", flush=True)
        stack.wait_ready()
        print()
        print_summary(env, services["embedded_db"], services["embedded_s3"], airflow=False)
        print_celery_summary(cfg, user, password, metadata)
        while not stack.exited():
            time.sleep(2)
        if not _load_state().get("celery"):
            print("The Celery stack was stopped (`make services-down`).")
            return 0
        name, code = next(iter(stack.exited().items()))
        print(f"{name} exited ({code}); see {(log_dir / name).relative_to(ROOT)}.log. Stopping the others.")
        return 1
    except stack_module.StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the Celery stack ...", flush=True)
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        state = _load_state()
        state.pop("celery", None)
        _save_state(state)
        print("stopped the scheduler, DAG processor, API server, triggerer and workers")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def print_celery_summary(cfg: Any, user: str, password: str, metadata: str) -> None:
    from governance.settings import redact_url

    workers = ", ".join(celery_stack().worker_name(n) for n in range(1, cfg.workers + 1))
    print(f"Airflow UI : {cfg.api_url}   login: {user} / {password}")
    print(f"             (the password is kept in {AIRFLOW_HOME.name}/simple_auth_manager_passwords.json.generated)")
    print(f"Executor   : CeleryExecutor, broker {cfg.broker_url}; workers {workers} (concurrency {cfg.concurrency})")
    print(f"Metadata   : {redact_url(celery_stack().sqlalchemy_url(metadata))}  (Celery's results too)")
    print(f"Logs       : {cfg.log_dir.relative_to(ROOT)}/<component>.log, task logs in {AIRFLOW_HOME.name}/logs")
    print("Stop with Ctrl-C; `make services-down` stops the stack too, and PostgreSQL, moto and the SMTP sink.")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start what is missing and write .local/env")
    up_parser.add_argument("--quiet", action="store_true")
    sub.add_parser("down", help="stop the services this script started")
    sub.add_parser("status", help="what runs")
    airflow_parser = sub.add_parser("airflow", help="airflow standalone over the same services")
    airflow_parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    celery_parser = sub.add_parser("airflow-celery", help="the DAGs on the CeleryExecutor (Redis, two workers)")
    celery_parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    celery_parser.add_argument(
        "--broker", default=os.environ.get("AIRFLOW__CELERY__BROKER_URL") or "redis://127.0.0.1:6379/0"
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        up(quiet=args.quiet)
    elif args.command == "down":
        down()
    elif args.command == "status":
        return status()
    elif args.command == "airflow":
        airflow_standalone(args.port)
    elif args.command == "airflow-celery":
        return airflow_celery(args.port, args.broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())

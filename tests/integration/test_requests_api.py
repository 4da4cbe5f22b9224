"""The request API (REQ-1) against a running Airflow API server with the governance plugin loaded:
Airflow's authentication and authorisation guard every route (anonymous 401, an invalid token 403
and an expired one 401 as Airflow's own API answers them; no DAG permission 403; a viewer reads
but cannot write), and an authenticated support clerk opens, verifies, extends, refuses, withdraws,
lists and shows requests in the real PostgreSQL ledger, recorded as the acting Airflow user.
Bad input is refused naming the field, never echoing an address.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.api_server import ApiServer, start_api_server

pytestmark = pytest.mark.integration

# SimpleAuthManager roles: 'user' may edit DAGs (PUT on subject_requests: writes), 'viewer' only
# read them (GET: reads); a user with no role has no permission at all.
USERS = {"clerk": "user", "auditor": "viewer", "outsider": ""}
ADA = "ada.lovelace@example.org"
ADA_REPLY = "ada.replies@example.net"

ENDPOINTS = [
    ("GET", "/requests"),
    ("GET", "/requests/1"),
    ("POST", "/requests"),
    ("POST", "/requests/1/verify"),
    ("POST", "/requests/1/extend"),
    ("POST", "/requests/1/refuse"),
    ("POST", "/requests/1/withdraw"),
    ("GET", "/openapi.json"),
]
WRITES = [(m, p) for m, p in ENDPOINTS if m == "POST"]
# A body valid for each write, so a refusal is about the caller and not the input.
BODIES = {
    "/requests": {"kind": "access", "email": ADA},
    "/requests/1/verify": {"method": "id_document"},
    "/requests/1/extend": {"months": 1, "reason": "many systems to search"},
    "/requests/1/refuse": {"reason": "manifestly unfounded"},
    "/requests/1/withdraw": None,
}


@pytest.fixture(scope="module")
def server(airflow_home, db_url, tmp_path_factory):
    started = time.monotonic()
    api = start_api_server(tmp_path_factory.mktemp("api-server"), users=USERS, db_url=db_url)
    print(f"airflow api-server ready in {time.monotonic() - started:.1f} s")
    yield api
    api.stop()


@pytest.fixture(scope="module")
def tokens(server: ApiServer) -> dict[str, str]:
    return {name: server.token(name) for name in USERS}


def call(server: ApiServer, method: str, path: str, *, token: str | None = None, json=None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(method, f"{server.url}/governance{path}", headers=headers, json=json, timeout=30)


def _ledger_rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT request_id, kind, state, opened_by, verified_by FROM governance.subject_requests")
        rows = cur.fetchall()
    conn.rollback()
    return rows


def test_anonymous_callers_are_refused_on_every_route(server):
    for method, path in ENDPOINTS:
        response = call(server, method, path, json=BODIES.get(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {"detail": "Not authenticated"}


def test_invalid_and_expired_tokens_are_refused_as_airflows_own_api_refuses_them(server):
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    claims = {"sub": "clerk", "role": "USER", "teams": []}
    forged = JWTGenerator(secret_key="f" * 64, valid_for=300, audience="apache-airflow")
    expired = JWTGenerator(secret_key=server.jwt_secret, valid_for=-3600, audience="apache-airflow")
    cases = {"garbage": ("not.a.jwt", 403), "forged": (forged.generate(claims), 403)}
    cases["expired"] = (expired.generate(claims), 401)
    for name, (token, expected) in cases.items():
        core = requests.get(f"{server.url}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert core.status_code == expected, (name, core.text)
        for method, path in ENDPOINTS:
            response = call(server, method, path, token=token, json=BODIES.get(path))
            assert (response.status_code, response.json()) == (expected, core.json()), (name, method, path)


def test_an_authenticated_user_without_permission_on_the_dag_gets_403_everywhere(server, tokens, conn):
    for method, path in ENDPOINTS:
        response = call(server, method, path, token=tokens["outsider"], json=BODIES.get(path))
        assert response.status_code == 403, (method, path, response.text)
    assert _ledger_rows(conn) == []


def test_a_viewer_reads_but_cannot_write(server, tokens, conn):
    assert call(server, "GET", "/requests", token=tokens["auditor"]).json() == []
    assert call(server, "GET", "/openapi.json", token=tokens["auditor"]).status_code == 200
    for method, path in WRITES:
        response = call(server, method, path, token=tokens["auditor"], json=BODIES.get(path))
        assert response.status_code == 403, (method, path, response.text)
    assert _ledger_rows(conn) == []


def test_the_clerk_opens_verifies_lists_and_shows_a_request(server, tokens, conn):
    clerk = tokens["clerk"]
    opened = call(
        server,
        "POST",
        "/requests",
        token=clerk,
        json={"kind": "access", "email": ADA, "reply_to": ADA_REPLY, "channel": "email"},
    )
    assert opened.status_code == 201, opened.text
    request_id = opened.json()["request_id"]
    assert opened.json()["state"] == "received"
    assert opened.json()["subject_found"] is False  # nobody by that address: recorded, "no data held"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, channel, opened_by, email_sha256 = governance.email_pseudonym(%s) "
            "FROM governance.subject_requests WHERE request_id = %s",
            (ADA, request_id),
        )
        assert cur.fetchone() == ("access", "email", "clerk", True)
        cur.execute("SELECT reply_to FROM governance.request_contacts WHERE request_id = %s", (request_id,))
        assert cur.fetchone() == (ADA_REPLY,)
    conn.rollback()

    verified = call(server, "POST", f"/requests/{request_id}/verify", token=clerk, json={"method": "id_document"})
    assert verified.status_code == 200, verified.text
    assert (verified.json()["state"], verified.json()["verified_by"]) == ("verified", "clerk")

    shown = call(server, "GET", f"/requests/{request_id}", token=tokens["auditor"])
    assert shown.status_code == 200 and shown.json()["verification_method"] == "id_document"
    listed = call(server, "GET", "/requests?state=verified&kind=access", token=tokens["auditor"]).json()
    assert [r["request_id"] for r in listed] == [request_id]
    assert call(server, "GET", "/requests?state=received", token=clerk).json() == []
    for response in (opened, verified, shown):
        assert ADA not in response.text and ADA_REPLY not in response.text
    with conn.cursor() as cur:  # each transition evidenced by the ledger, naming the Airflow user
        cur.execute(
            "SELECT kind, details->>'by' FROM governance.evidence WHERE run_id = %s ORDER BY entry_id",
            (f"request-{request_id}",),
        )
        assert cur.fetchall() == [("request_opened", "clerk"), ("request_verified", "clerk")]
    conn.rollback()


def test_the_acting_user_comes_from_the_token_never_from_the_body(server, tokens, conn):
    response = call(
        server, "POST", "/requests", token=tokens["clerk"], json={"kind": "erasure", "account_id": 7, "opened_by": "x"}
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "opened_by"]]


def test_extend_refuse_and_withdraw_and_the_state_machine(server, tokens, conn):
    clerk = tokens["clerk"]
    ids = []
    for kind in ("portability", "erasure", "objection"):
        response = call(
            server, "POST", "/requests", token=clerk, json={"kind": kind, "account_id": 4242, "reply_to": ADA}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["request_id"])
    extended = call(server, "POST", f"/requests/{ids[0]}/extend", token=clerk, json={"months": 2, "reason": "complex"})
    assert extended.status_code == 200, extended.text
    assert extended.json()["extended_due_at"] > extended.json()["due_at"]
    refused = call(server, "POST", f"/requests/{ids[1]}/refuse", token=clerk, json={"reason": "manifestly unfounded"})
    assert refused.status_code == 200 and refused.json()["state"] == "refused", refused.text
    withdrawn = call(server, "POST", f"/requests/{ids[2]}/withdraw", token=clerk)
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn", withdrawn.text

    again = call(server, "POST", f"/requests/{ids[2]}/verify", token=clerk, json={"method": "id_document"})
    assert again.status_code == 400 and str(ids[2]) in again.json()["detail"], again.text
    too_long = call(server, "POST", f"/requests/{ids[0]}/extend", token=clerk, json={"months": 3, "reason": "x"})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "months"]
    missing = call(server, "GET", "/requests/999999", token=clerk)
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert call(server, "POST", "/requests/999999/withdraw", token=clerk).status_code == 404


@pytest.mark.parametrize("field", ["email", "reply_to"])
def test_a_malformed_address_is_refused_naming_the_field_without_echoing_it(server, tokens, conn, field):
    before = _ledger_rows(conn)
    bad = "grace.hopper@@navy"
    body = {"kind": "access", "account_id": 99, field: bad}
    response = call(server, "POST", "/requests", token=tokens["clerk"], json=body)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert field in response.json()["detail"][0]["msg"]
    assert "grace" not in response.text and "navy" not in response.text
    assert _ledger_rows(conn) == before


def test_unknown_choices_are_refused_naming_the_field_and_the_valid_values(server, tokens):
    clerk = tokens["clerk"]
    cases = [
        ("POST", "/requests", {"kind": "gossip", "account_id": 5}, ["body", "kind"], "access"),
        ("POST", "/requests", {"kind": "access", "account_id": 5, "channel": "fax"}, ["body", "channel"], "phone"),
        ("POST", "/requests/1/verify", {"method": "passport scan"}, ["body", "method"], "bankid"),
        ("GET", "/requests?state=lost", None, ["query", "state", 0], "open"),
        ("GET", "/requests?kind=gossip", None, ["query", "kind", 0], "erasure"),
    ]
    for method, path, body, loc, valid in cases:
        response = call(server, method, path, token=clerk, json=body)
        assert response.status_code == 422, (path, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == loc and valid in error["msg"], (path, error)


def test_a_duplicate_of_an_open_request_names_the_open_one(server, tokens):
    body = {"kind": "restriction", "email": "  Charles.Babbage@Example.org ", "reply_to": ADA}
    first = call(server, "POST", "/requests", token=tokens["clerk"], json=body)
    assert first.status_code == 201, first.text
    duplicate = call(
        server, "POST", "/requests", token=tokens["clerk"], json=body | {"email": "charles.babbage@example.org"}
    )
    assert duplicate.status_code == 400, duplicate.text
    assert str(first.json()["request_id"]) in duplicate.json()["detail"]
    assert "babbage" not in duplicate.text.lower()


def test_the_server_log_holds_no_address(server):
    log = server.log().lower()
    assert "governance" in log  # the plugin's requests were logged (paths, statuses)
    for needle in ("ada.lovelace", "ada.replies", "grace.hopper", "babbage"):
        assert needle not in log


def test_other_airflow_components_load_the_plugin_without_building_the_app(tmp_path):
    """A task runner imports every plugin file (for macros): the app and the API server's security
    imports are built only where ``fastapi_apps`` is read (plugins/governance_plugin.py)."""
    import os
    import subprocess
    import sys

    from tests.integration.api_server import ROOT

    probe = (
        "import sys\n"
        "from airflow.sdk.plugins_manager import _get_plugins\n"
        "plugins, errors = _get_plugins()\n"
        "assert 'governance' in [p.name for p in plugins] and not errors, (plugins, errors)\n"
        "built = ('governance_airflow.api.app', 'airflow.api_fastapi.core_api.security')\n"
        "print(sorted(m for m in built if m in sys.modules))\n"
    )
    env = os.environ | {"AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "PYTHONPATH": str(ROOT / "include")}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

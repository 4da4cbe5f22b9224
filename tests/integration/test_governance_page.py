"""The Governance page (#13) in a real headless browser against a real ``airflow api-server``
(SimpleAuthManager, the governance plugin): log in through Airflow's own login page, open the page
from Airflow's navigation (the plugin's external view), see every rule with the overdue count that
``governance audit --json`` gives for the same instant, sweep and audit, see them green, open every
view (screenshots under test-artifacts/governance-page/), verify the evidence chain with the button
(recorded with the acting user's name, SEC-1). Also over plain HTTP: an anonymous request gets no
data, a user without access to the governance DAGs gets 403, a viewer cannot verify, a cross-site
form post is refused. No personal data on any view (CONTRIBUTING.md habit 6).

Chromium and its driver come from the distribution (``apt-get install -y chromium chromium-driver``,
done by .ci/run as root); Selenium is pointed at them and never downloads anything (SE_OFFLINE).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from governance.cli import main
from governance.compliance import chain
from governance.policy import load_policy
from governance.requests import open_request
from governance_dev.loader import ensure_store_buckets
from governance_dev.reference import Snapshot
from tests.integration.api_server import ApiServer, start_api_server
from tests.integration.test_audit_properties import empty_shop, insert_snapshot

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "governance-page"
INSTALL = "install them with: apt-get install -y chromium chromium-driver (Debian/Ubuntu; .ci/run does it as root)"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason=f"no distribution Chromium at {CHROMIUM} and {CHROMEDRIVER}; {INSTALL}",
    ),
]

# SimpleAuthManager roles: admin may verify (PUT on retention_audit), a viewer only reads, a user
# with no role has no access to any DAG.
USERS = {"reviewer": "admin", "auditor": "viewer", "outsider": ""}
VIEWS = ["now", "history", "requests", "recipients", "holds", "evidence"]
# What the shop holds that must never reach a page.
PERSONAL = ["kari.nordmann@example.invalid", "ola@example.invalid", "per@example.invalid"]
WAIT = 30


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch):
    for name in ("GOVERNANCE_DB_URL", "GOVERNANCE_S3_ENDPOINT_URL", "GOVERNANCE_POLICY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server(airflow_home, db_url, s3_endpoint, tmp_path_factory):
    api = start_api_server(tmp_path_factory.mktemp("api-server"), users=USERS, db_url=db_url, s3_url=s3_endpoint)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def tokens(server: ApiServer) -> dict[str, str]:
    return {name: server.token(name) for name in USERS}


@pytest.fixture
def browser(monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def shop(conn, s3, db_url, capsys):
    """Visits and contact messages past their windows (and some within) at the real clock's now
    (the page reads the real clock), an open access request and a hold on one account."""
    now = datetime.now(UTC).replace(microsecond=0)
    empty_shop(conn)
    insert_snapshot(
        conn,
        Snapshot(
            visits=[
                {"visit_id": 1, "last_activity_at": now - timedelta(hours=25)},
                {"visit_id": 2, "last_activity_at": now - timedelta(hours=71, minutes=30)},
                {"visit_id": 3, "last_activity_at": now - timedelta(hours=1)},
            ],
            accounts=[{"account_id": 4242, "email": PERSONAL[2], "deleted_at": None}],
            contact_messages=[
                {"message_id": 1, "email": PERSONAL[0], "sent_at": now - timedelta(days=3 * 365)},
                {"message_id": 2, "email": PERSONAL[1], "sent_at": now - timedelta(days=10)},
            ],
        ),
    )
    ensure_store_buckets(s3, load_policy())
    with conn.cursor() as cur:
        cur.execute("TRUNCATE governance.subject_requests, governance.legal_holds RESTART IDENTITY CASCADE")
    conn.commit()
    open_request(conn, load_policy(), kind="access", email=PERSONAL[1], channel="email", opened_by="support", now=now)
    hold = ["hold", "add", "--db-url", db_url, "--scope", "person", "--account-id", "4242"]
    assert cli(capsys, *hold, "--reason", "court order 2026-117", "--set-by", "legal")[0] == 0
    return now


def cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, out


def view_url(server: ApiServer, view: str) -> str:
    return f"{server.url}/governance/view/{view}"


def test_an_anonymous_request_gets_no_data(server, shop):
    for view in VIEWS:
        response = requests.get(view_url(server, view), allow_redirects=False, timeout=30)
        # sent to Airflow's login, coming back to the view; no figure in the answer
        assert response.status_code == 303, (view, response.status_code)
        assert response.headers["location"].startswith("/auth/login"), response.headers["location"]
        assert "next=" in response.headers["location"]
        assert "visit-data" not in response.text and "<table" not in response.text
    refused = requests.post(view_url(server, "evidence/verify"), timeout=30)
    assert refused.status_code == 401
    # the chart script too needs a signed-in caller (it holds no figure, only the charting library)
    script = requests.get(view_url(server, "charts.js"), allow_redirects=False, timeout=30)
    assert script.status_code in (303, 401) and "The chart could not be drawn" not in script.text


def test_no_dag_access_is_403_and_a_viewer_cannot_verify(server, tokens, shop, conn):
    for view in VIEWS:
        response = requests.get(view_url(server, view), headers=bearer(tokens["outsider"]), timeout=30)
        assert response.status_code == 403, (view, response.status_code)
        assert "visit-data" not in response.text and "not allowed" in response.text
        assert requests.get(view_url(server, view), headers=bearer(tokens["auditor"]), timeout=30).status_code == 200
    script = requests.get(view_url(server, "charts.js"), headers=bearer(tokens["auditor"]), timeout=30)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "The chart could not be drawn" in script.text and len(script.content) > 500_000  # Vega with it
    before = verifications(conn)
    viewer = requests.post(view_url(server, "evidence/verify"), headers=bearer(tokens["auditor"]), timeout=30)
    assert viewer.status_code == 403
    # a form on another site posting with the reviewer's session cookie
    forged = requests.post(
        view_url(server, "evidence/verify"),
        cookies={"_token": tokens["reviewer"]},
        headers={"Origin": "http://elsewhere.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert forged.status_code == 403
    assert verifications(conn) == before


def test_the_page_in_a_browser_shows_the_audit_then_green_after_a_sweep(
    server, shop, browser, conn, db_url, s3_url, capsys
):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", shop.isoformat()]
    code, out = cli(capsys, "audit", "--json", *base, "--run-id", "page-audit-1")
    assert code == 1
    audited = {r["rule"]: (r["overdue"], r["held"]) for r in json.loads(out)["rules"]}
    overdue_rules = {rule for rule, (overdue, _) in audited.items() if overdue}
    assert {"visit-data", "contact-messages"} <= overdue_rules

    login(browser, server, "reviewer")
    open_governance_from_the_navigation(browser)
    shown = rule_rows(browser)
    for rule, (overdue, held) in audited.items():
        assert (shown[rule]["overdue"], shown[rule]["held"]) == (str(overdue), str(held)), rule
        assert shown[rule]["status"] == ("red" if overdue else "green"), rule
    shot(browser, "now-before-sweep")

    assert cli(capsys, "sweep", *base, "--run-id", "page-sweep-1")[0] == 0
    assert cli(capsys, "audit", "--json", *base, "--run-id", "page-audit-2")[0] == 0
    browser.refresh()
    enter_page_frame(browser)
    shown = rule_rows(browser)
    assert {rule: row["status"] for rule, row in shown.items() if rule in audited} == dict.fromkeys(audited, "green")
    assert shown["visit-data"]["removed"] == str(audited["visit-data"][0])
    shot(browser, "now")

    for view in VIEWS[1:]:
        open_tab(browser, view)
        for chart in css(browser, ".chart[data-spec]"):  # drawn in the browser by the app's own script
            wait_for(browser, f"#{chart.get_attribute('id')} svg")
        source = browser.page_source
        assert not [p for p in [*PERSONAL, "court order"] if p in source], view
        shot(browser, view)
    open_tab(browser, "requests")
    assert [r.get_attribute("data-request") for r in css(browser, "#requests tr[data-request]")] == ["1"]
    open_tab(browser, "holds")
    assert [r.get_attribute("data-hold") for r in css(browser, "#holds-in-force tr[data-hold]")] == ["1"]
    open_tab(browser, "history")
    wait_for(browser, "#effects-chart svg")  # drawn by the script the app serves, nothing from elsewhere
    wait_for(browser, "#audits-chart svg")
    drawn = browser.find_element("css selector", "#effects-chart svg").get_attribute("innerHTML")
    assert "visit-data" in drawn, "the History view's chart has no panel of the swept rule"
    assert "could not be drawn" not in browser.find_element("id", "audits-chart").text
    audits = {
        row.get_attribute("data-run"): row.get_attribute("data-ok") for row in css(browser, "#audits tr[data-run]")
    }
    assert (audits["page-audit-1"], audits["page-audit-2"]) == ("false", "true")

    # the chain's head anchored outside the database (as the DAGs' teardown does): the button checks it too
    assert cli(capsys, "evidence", "anchor", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--run-id", "a1")[0] == 0
    open_tab(browser, "evidence")
    browser.find_element("id", "verify").click()
    wait_for(browser, "#verify-result")
    assert "intact" in browser.find_element("id", "verify-result").text
    assert browser.find_element("id", "verified-by").text == "reviewer"
    assert "anchors: 1 checked" in browser.find_element("id", "verified-anchors").text
    shot(browser, "evidence-verified")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT details ->> 'by', (details ->> 'ok')::boolean, details -> 'notes' ->> 0 FROM governance.evidence "
            "WHERE kind = %s",
            (chain.VERIFIED_KIND,),
        )
        [(by, ok, first_note)] = cur.fetchall()
        assert (by, ok) == ("reviewer", True) and first_note.startswith("anchors: 1 checked")
    conn.rollback()
    print(f"\nscreenshots of the Governance page: {ARTIFACTS}")


def test_the_navigation_finds_the_page_under_a_base_path(airflow_home, db_url, tmp_path_factory, shop, browser):
    """Airflow served under /airflow (``[api] base_url``, as behind a reverse proxy): the nav entry,
    the page in its iframe and the page's own tab links all stay under the base path."""
    api = start_api_server(tmp_path_factory.mktemp("api-server-base"), users=USERS, db_url=db_url, base_path="/airflow")
    try:
        login(browser, api, "reviewer")
        open_governance_from_the_navigation(browser, "/airflow")
        assert rule_rows(browser), "no rules on the Now view under the base path"
        open_tab(browser, "evidence")
        assert browser.execute_script("return location.pathname") == "/airflow/governance/view/evidence"
    finally:
        api.stop()


# --- helpers ---------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verifications(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE kind = %s", (chain.VERIFIED_KIND,))
        (count,) = cur.fetchone()
    conn.rollback()
    return int(count)


def css(browser, selector: str) -> list:
    return list(browser.find_elements("css selector", selector))


def wait_for(browser, selector: str) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located(("css selector", selector)))


def login(browser, server: ApiServer, user: str) -> None:
    """Airflow's own login page (SimpleAuthManager's), as a person signs in."""
    browser.get(f"{server.url}/")
    wait_for(browser, "input[name=username]")
    browser.find_element("css selector", "input[name=username]").send_keys(user)
    browser.find_element("css selector", "input[name=password]").send_keys(server.passwords[user])
    browser.find_element("css selector", "button[type=submit]").click()
    wait_for(browser, "a[href$='plugin/governance']")


def open_governance_from_the_navigation(browser, base_path: str = "") -> None:
    browser.find_element("css selector", "a[href$='plugin/governance']").click()
    enter_page_frame(browser, base_path)


def enter_page_frame(browser, base_path: str = "") -> None:
    """Airflow shows an external view in an iframe of its own page; look inside it."""
    browser.switch_to.default_content()
    wait_for(browser, "iframe[src*='governance/view/']")
    browser.switch_to.frame(browser.find_element("css selector", "iframe[src*='governance/view/']"))
    wait_for(browser, "main")
    # the plugin's relative href resolved against Airflow's base URL
    assert browser.execute_script("return location.pathname").startswith(f"{base_path}/governance/view/")


def open_tab(browser, view: str) -> None:
    browser.find_element("id", f"tab-{view}").click()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        tabs = css(browser, f"#tab-{view}.active")
        if tabs:
            return
        time.sleep(0.1)
    raise AssertionError(f"the {view} view did not open")


def rule_rows(browser) -> dict[str, dict[str, str]]:
    wait_for(browser, "#rules")
    return {
        row.get_attribute("data-rule"): {
            "status": row.get_attribute("data-status"),
            "overdue": row.find_element("css selector", "td.overdue").text,
            "held": row.find_element("css selector", "td.held").text,
            "removed": row.find_element("css selector", "td.removed").text,
        }
        for row in css(browser, "#rules tr[data-rule]")
    }


def shot(browser, name: str) -> None:
    """The whole window (Airflow's frame and the view inside it) as a PNG artefact."""
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    enter_page_frame(browser)


def test_the_period_report_downloads_from_the_page(server, tokens, shop, conn):
    today = shop.date().isoformat()
    form = {"from": today, "to": today, "format": "json"}
    viewer = requests.post(view_url(server, "report"), headers=bearer(tokens["auditor"]), data=form, timeout=60)
    assert viewer.status_code == 403
    before = verifications(conn)
    response = requests.post(view_url(server, "report"), headers=bearer(tokens["reviewer"]), data=form, timeout=120)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-disposition"] == f'attachment; filename="governance-report-{today}-{today}.json"'
    report = response.json()
    assert report["period"]["from"] == today and report["generated_by"] == "reviewer"
    assert not [p for p in PERSONAL if p in response.text]
    assert verifications(conn) == before + 1  # building it verified the chain, recorded with the user
    pdf = requests.post(
        view_url(server, "report"), headers=bearer(tokens["reviewer"]), data={**form, "format": "pdf"}, timeout=120
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    bad = requests.post(
        view_url(server, "report"), headers=bearer(tokens["reviewer"]), data={**form, "from": "soon"}, timeout=60
    )
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text

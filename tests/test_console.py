"""Web console on both servers: served with its security headers, off on a primary without an
admin token, the endpoints it uses check their input, and, in a real headless Chromium
(Debian's chromium + chromium-driver + python3-selenium), an admin signs in, compares a
conflict's two versions, accepts the primary's, sees hostile rows as text and new changes
arrive without a reload.

One pair of sites and one browser serve the whole module (starting Chromium costs a second
or two). Set TDGL_SCREENSHOTS=DIR to save a 1280x800 screenshot of each page there
(docs/console/ holds the ones the README shows)."""
import json
import os
import re
import tempfile

import pytest
import requests

from harness import wait_until
from sites import ADMIN_TOKEN, PrimarySite, ReplicaSite
from test_replica import CUSTOMER, pair

PRIMARY_TOKEN = "primary-admin-token-0123456789"
PUSH = "push-secret-for-console-0123456789"
HOSTILE = ['<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned = 2">',
           'javascript:window.__pwned = 3']
SHOTS = os.environ.get("TDGL_SCREENSHOTS")
pytestmark = pytest.mark.xdist_group("console")   # one worker: one pair of sites, one browser


@pytest.fixture(scope="module")
def sites(primary_cluster, replica_cluster):
    """A primary (console on) paired with a replica (push-notified), synced, for the module."""
    servers, logdir = [], tempfile.mkdtemp(prefix="tdgl-console-")
    primary = PrimarySite(primary_cluster, primary_cluster.new_db("p"), servers, logdir)
    replica = ReplicaSite(replica_cluster, replica_cluster.new_db("r"), servers, logdir)
    try:
        primary.migrate()
        replica.migrate()
        primary.serve(env={"TDGL_ADMIN_TOKEN": PRIMARY_TOKEN})
        pair(primary, replica, CUSTOMER, ["customer"], "--push-secret", PUSH,
             "--poll-interval", "3600")
        primary.sql("INSERT INTO customer VALUES (1, 'Ada', 'ACME', 10.50), "
                    "(2, 'Bob', 'ACME', 20), (3, 'Cy', 'Initech', 30)")
        replica.serve()
        primary.cli("push", "add", replica.url, "--secret", PUSH)
        wait_until(lambda: replica.one("SELECT count(*) FROM customer") == 3, timeout=30,
                   what="the initial sync")
        yield primary, replica
    finally:
        reports = []
        for s in servers:
            s.stop()
            if s.sanitizer_report():
                reports.append(f"{s.binary}:\n{s.sanitizer_report()}")
        primary.close()
        replica.close()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)


def make_conflict(primary, replica, key, local, remote):
    """Edits row `key` on the replica, then on the primary; returns the open conflict's id."""
    replica.sql("UPDATE customer SET name = %s WHERE id = %s", (local, key))
    primary.sql("UPDATE customer SET name = %s, amount = amount + 1 WHERE id = %s",
                (remote, key))
    return wait_until(lambda: replica.one(
        "SELECT id FROM tdgl_replica.conflicts WHERE pk = %s AND status = 'Open'",
        (json.dumps({"id": key}),)), timeout=20, what="the conflict")


# ---- plain HTTP ----

def test_console_files_carry_the_security_headers(sites):
    primary, replica = sites
    for base, page, script in [(replica.url, "/", "/console/replica.js"),
                               (primary.url, "/", "/console/primary.js")]:
        for path, ctype in [(page, "text/html"), (script, "text/javascript"),
                            ("/console/common.js", "text/javascript"),
                            ("/console/app.css", "text/css")]:
            r = requests.get(base + path, timeout=10, headers={"Origin": "http://evil.example"})
            assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype), path
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["X-Frame-Options"] == "DENY"
            assert not any(h.lower().startswith("access-control-") for h in r.headers)
        html = requests.get(base + page, timeout=10).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script in the page"
        assert not re.search(r"\son\w+=", html), "inline event handler in the page"
    r = requests.post(replica.url + "/", timeout=10)
    assert r.status_code == 405 and "error" in r.json()


def test_primary_console_is_off_without_an_admin_token(sites, primary_cluster, servers,
                                                       logdir):
    primary, _ = sites
    bare = PrimarySite(primary_cluster, primary.dbname, servers, logdir)
    bare.serve()
    for path in ["/", "/console/primary.js", "/api/admin/overview", "/api/admin/keys"]:
        r = requests.get(bare.url + path, timeout=10,
                         headers={"Authorization": "Bearer " + PRIMARY_TOKEN})
        assert r.status_code == 404 and r.json() == {"error": "not found"}, path
    bare.close()
    # with the token: the admin API wants exactly it (a replica's API key does not open it)
    key, secret = primary.keygen("nosy")
    for auth in [None, f"token {key}:{secret}", "Bearer " + PRIMARY_TOKEN + "x"]:
        r = requests.get(primary.url + "/api/admin/keys", timeout=10,
                         headers={"Authorization": auth} if auth else {})
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}


def test_serve_refuses_a_short_primary_admin_token(sites):
    primary, _ = sites
    p = primary.cli("serve", "--listen", "127.0.0.1:0", "--admin-token", "short", check=False)
    assert p.returncode == 2 and "at least 16 characters" in p.stderr


def test_console_endpoints_answer_bad_input_with_4xx_json(sites):
    primary, replica = sites
    for path, status in [("/api/log/page?limit=0", 400), ("/api/log/page?limit=x", 400),
                         ("/api/log/page?status=Nope", 400), ("/api/log/page?before=-1", 400),
                         ("/api/log/page?since=yesterday-ish", 400),
                         ("/api/log/page?until=2026-13-45", 400),
                         ("/api/log/page?key=%7Bnope", 400), ("/api/log/page?key=%7B%7D%5B", 400),
                         ("/api/local-edits?limit=0", 400), ("/api/conflicts/abc", 400),
                         ("/api/conflicts/0", 400), ("/api/conflicts/999999", 404)]:
        r = replica.api("GET", path)
        assert r.status_code == status and "error" in r.json(), path
    assert replica.api("GET", "/api/log/retry-failed").status_code == 405
    assert replica.api("POST", "/api/overview").status_code == 405
    admin = {"Authorization": "Bearer " + PRIMARY_TOKEN}
    for path, status in [("/api/admin/log?limit=0", 400), ("/api/admin/log?before=x", 400),
                         ("/api/admin/log?limit=501", 400), ("/api/admin/nothing", 404)]:
        r = requests.get(primary.url + path, headers=admin, timeout=10)
        assert r.status_code == status and "error" in r.json(), path


def test_log_pages_follow_the_id_cursor_and_filters(sites):
    primary, replica = sites
    for n in range(3):
        primary.sql("UPDATE customer SET company = company || '.' WHERE id = 2")
        primary.sql("INSERT INTO customer VALUES (%s, 'Log', 'ACME', 1)", (100 + n,))
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE pk = '{\"id\": 2}'")
               == 3, timeout=20, what="the changes logged on the replica")
    everything = replica.api("GET", "/api/log/page?limit=1000").json()
    ids = [e["id"] for e in everything["entries"]]
    assert ids == sorted(ids, reverse=True) and everything["next_before"] is None
    paged, before = [], ""
    while True:
        page = replica.api("GET", "/api/log/page?limit=2" + before).json()
        paged += [e["id"] for e in page["entries"]]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert paged == ids
    one = replica.api("GET", "/api/log/page", params={"key": "2", "table": "customer"}).json()
    assert one["entries"] and all(e["pk"] == {"id": 2} for e in one["entries"])
    same = replica.api("GET", "/api/log/page", params={"key": '{"id": 2}'}).json()
    assert [e["id"] for e in same["entries"]] == [e["id"] for e in one["entries"]]
    newest = everything["entries"][0]["created_at"]
    since = replica.api("GET", "/api/log/page", params={"since": newest}).json()["entries"]
    assert since and all(e["created_at"] >= newest for e in since)
    assert replica.api("GET", "/api/log/page",
                       params={"until": "2000-01-01T00:00:00Z"}).json()["entries"] == []
    assert replica.api("GET", "/api/log/page?status=failed").json()["entries"] == [
        e for e in everything["entries"] if e["status"] == "Failed"]


def test_conflict_detail_lists_each_column_with_its_difference(sites):
    primary, replica = sites
    cid = make_conflict(primary, replica, 3, "Cy (local)", "Cy (primary)")
    c = replica.api("GET", f"/api/conflicts/{cid}").json()
    cols = {x["column"]: x for x in c["columns"]}
    assert [x["column"] for x in c["columns"]] == ["id", "name", "company", "amount"]
    assert cols["name"]["differs"] and cols["name"]["primary"] == "Cy (primary)"
    assert cols["name"]["local"] == "Cy (local)"
    assert cols["amount"]["differs"] and not cols["id"]["differs"]
    assert not cols["company"]["differs"] and c["status"] == "Open"
    listed = replica.api("GET", "/api/local-edits").json()
    assert {"table": "customer", "pk": {"id": 3}} .items() <= listed[0].items()
    assert listed[0]["conflict_id"] == cid


def test_primary_admin_api_shows_tables_keys_log_and_push(sites):
    primary, _ = sites
    admin = {"Authorization": "Bearer " + PRIMARY_TOKEN}
    get = lambda p: requests.get(primary.url + p, headers=admin, timeout=10)  # noqa: E731
    o = get("/api/admin/overview").json()
    assert [(t["table"], t["trigger"]) for t in o["tables"]] == [("customer", "ok")]
    assert o["newest_id"] >= 3 and o["last_minute"] >= 3
    keys = get("/api/admin/keys").json()
    main = next(k for k in keys if k["label"] == "main")
    assert main["last_seen"] and main["behind"] is not None
    tail = get("/api/admin/log?limit=2").json()
    assert len(tail["changes"]) == 2 and tail["changes"][0]["id"] > tail["changes"][1]["id"]
    older = get(f"/api/admin/log?limit=2&before={tail['next_before']}").json()
    assert older["changes"][0]["id"] < tail["changes"][1]["id"]
    assert tail["changes"][0]["row"]["id"] == tail["changes"][0]["pk"]["id"]
    push = wait_until(lambda: [t for t in get("/api/admin/push").json()
                               if t["delivery"] and t["delivery"]["last_delivered_at"]],
                      timeout=20, what="a delivered push")
    assert push[0]["delivery"]["failures"] == 0 and "secret" not in push[0]


# ---- in the browser ----

@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,800", "--hide-scrollbars", "--lang=en-US"]:
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",   # the page itself 1280x800
                      {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    yield d
    d.quit()


COMPARE_ROWS = """return [...document.querySelectorAll('table.compare tbody tr')].map((r) => ({
    column: r.querySelector('th').dataset.column, class: r.className,
    cells: [...r.querySelectorAll('td')].map((td) => td.innerText),
    background: getComputedStyle(r.querySelector('td')).backgroundColor}))"""


def click(d, xpath):
    """Clicks the element (found again if a live update replaced the page meanwhile)."""
    from selenium.webdriver.common.by import By
    wait(d, lambda d: d.find_element(By.XPATH, xpath).click() or True, xpath)


def wait(d, pred, what, timeout=20):
    return wait_until(lambda: pred(d), timeout=timeout, interval=0.05, what=what)


def shot(d, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def sign_in(d, url, token):
    from selenium.webdriver.common.by import By
    d.get(url + "/")
    d.execute_script("sessionStorage.clear()")
    d.get(url + "/")
    box = wait(d, lambda d: d.find_element(By.ID, "token"), "the sign-in form")
    box.send_keys(token)
    d.find_element(By.ID, "signin-button").click()


def open_page(d, url, hash_, token=ADMIN_TOKEN):
    """Goes to a page of the console at url (a hash change: no reload when already there,
    signed in) and waits for it."""
    from selenium.webdriver.common.by import By
    if not d.current_url.startswith(url + "/"):
        d.get(url + "/")
    if not d.execute_script("return document.getElementById('signin').hidden"):
        sign_in(d, url, token)
        wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "#main .view h1"), "the console")
    d.execute_script("location.hash = arguments[0]", hash_)
    return wait(d, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#main .view')].some("
        "(v) => v.dataset.route === arguments[0])", hash_.lstrip("#")), hash_)


def test_sign_in_refuses_a_wrong_token_with_a_message(sites, browser):
    from selenium.webdriver.common.by import By
    _, replica = sites
    sign_in(browser, replica.url, "not-the-token-at-all")
    msg = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#signin-msg .msg.error"),
               "the refusal")
    assert "Wrong admin token" in msg.text
    assert browser.execute_script("return sessionStorage.length") == 0
    shot(browser, "replica-sign-in")
    sign_in(browser, replica.url, ADMIN_TOKEN)
    wait(browser, lambda d: "Overview" in d.find_element(By.CSS_SELECTOR, "#main h1").text,
         "the overview")
    assert not browser.find_element(By.ID, "app").get_attribute("hidden")
    # the token lives in this tab's sessionStorage only: no cookie, not in the URL
    assert browser.get_cookies() == [] and ADMIN_TOKEN not in browser.current_url
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live", "the event stream")
    wait(browser, lambda d: "main" in d.find_element(By.CSS_SELECTOR, "#main tbody").text,
         "the source row")
    # times in the browser's zone, the UTC value on hover
    title = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#main time")
                 .get_attribute("title"), "a time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", title)
    shot(browser, "replica-overview")


def test_conflict_compared_side_by_side_then_accept_primary(sites, browser):
    from selenium.webdriver.common.by import By
    primary, replica = sites
    cid = make_conflict(primary, replica, 1, "Ada (edited here)", "Ada (edited on primary)")
    open_page(browser, replica.url, "#/conflicts")
    wait(browser, lambda d: d.find_element(By.LINK_TEXT, f"Conflict {cid}"),
         "the conflict in the list")
    shot(browser, "replica-conflicts")
    # found again at the click: a live update may have drawn the list anew meanwhile
    wait(browser, lambda d: d.find_element(By.LINK_TEXT, f"Conflict {cid}").click() or True,
         "the conflict's link")
    wait(browser, lambda d: f"Conflict {cid}" in d.find_element(By.CSS_SELECTOR, "#main h1").text,
         "the conflict page")
    rows = wait(browser, lambda d: d.execute_script(COMPARE_ROWS), "the compared columns")
    rows = {r["column"]: r for r in rows}
    assert [c for c, r in rows.items() if "differs" in r["class"]] == ["name", "amount"]
    assert rows["name"]["cells"][:2] == ["Ada (edited on primary)", "Ada (edited here)"]
    # the highlight is visible: a differing row has another background than the others
    assert rows["name"]["background"] != rows["id"]["background"]
    shot(browser, "replica-conflict")
    if SHOTS:   # the same page at a phone's width
        metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        shot(browser, "replica-conflict-phone")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(
            metrics, width=1280, height=800, mobile=False))
    click(browser, "//button[normalize-space()='Accept Primary']")
    wait(browser, lambda d: "resolved: Accept Primary" in d.find_element(By.ID, "flash").text,
         "the confirmation")
    assert replica.one("SELECT name FROM customer WHERE id = 1") == "Ada (edited on primary)"
    wait(browser, lambda d: "Resolved" in d.find_element(By.CSS_SELECTOR, "dl.meta").text,
         "the conflict shown resolved")
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Accept Primary']")


def test_hostile_rows_render_as_text_and_run_nothing(sites, browser):
    from selenium.webdriver.common.by import By
    primary, replica = sites
    primary.sql("INSERT INTO customer VALUES (666, %s, %s, 1)", (HOSTILE[0], HOSTILE[1]))
    wait_until(lambda: replica.one("SELECT count(*) FROM customer WHERE id = 666"), timeout=20,
               what="the hostile row on the replica")
    cid = make_conflict(primary, replica, 666, HOSTILE[2], HOSTILE[0] + "!")
    open_page(browser, replica.url, f"#/conflicts/{cid}")
    text = wait(browser, lambda d: d.execute_script(
        "return document.querySelector('table.compare').innerText"), "the compared columns")
    for h in HOSTILE:
        assert h in text
    assert not browser.find_elements(By.CSS_SELECTOR, "#main img, #main script, #main a[href^='javascript']")
    open_page(browser, replica.url, "#/log?key=666")
    wait(browser, lambda d: "id=666" in d.find_element(By.CSS_SELECTOR, "#main tbody").text,
         "the hostile row's log entries")
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.get_log("browser") == [] or not any(
        "Content Security Policy" in e["message"] for e in browser.get_log("browser"))
    replica.api("POST", f"/api/conflicts/{cid}/resolve", json={"resolution": "Keep Local"})


def test_live_view_shows_a_new_change_without_a_reload(sites, browser):
    from selenium.webdriver.common.by import By
    primary, replica = sites
    open_page(browser, replica.url, "#/log")
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live", "the event stream")
    browser.execute_script("window.__sameDocument = true")
    # read through re-renders: the live view replaces the table on each event (a table found
    # just before one is gone when its text is read)
    wait(browser, lambda d: "id=4242" not in d.find_element(By.CSS_SELECTOR, "#main tbody").text,
         "the log before the new change")
    primary.sql("INSERT INTO customer VALUES (4242, 'Newcomer', 'ACME', 1)")
    wait(browser, lambda d: "id=4242" in d.find_element(By.CSS_SELECTOR, "#main tbody").text,
         "the new change in the log")
    assert browser.execute_script("return window.__sameDocument === true")
    shot(browser, "replica-log")
    for page, name in [("#/runs", "replica-runs"), ("#/edits", "replica-local-edits")]:
        open_page(browser, replica.url, page)
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#main tbody tr td:not(.empty)"),
             page)
        shot(browser, name)


def test_disabled_source_dry_run_shows_the_columns_a_pull_would_change(sites, browser):
    from selenium.webdriver.common.by import By
    primary, replica = sites
    open_page(browser, replica.url, "#/")
    click(browser, "//tr[th//text()='main']//button[normalize-space()='Disable']")
    wait(browser, lambda d: "disabled" in d.find_element(By.CSS_SELECTOR, "#main tbody").text,
         "the source shown disabled")
    assert replica.one("SELECT enabled FROM tdgl_replica.sources WHERE name = 'main'") is False
    primary.sql("UPDATE customer SET company = 'Globex' WHERE id = 2")
    click(browser, "//tr[th//text()='main']//button[normalize-space()='Dry run']")
    report = wait(browser, lambda d: "Globex" in d.find_element(By.ID, "report").text and
                  d.find_element(By.ID, "report").text, "the dry-run report")
    assert "update" in report and "company" in report and "Globex" in report
    shot(browser, "replica-dry-run")
    assert replica.one("SELECT company FROM customer WHERE id = 2") != "Globex"
    open_page(browser, replica.url, "#/")
    click(browser, "//tr[th//text()='main']//button[normalize-space()='Enable']")
    wait_until(lambda: replica.one("SELECT company FROM customer WHERE id = 2") == "Globex",
               timeout=20, what="the change applied once the source is enabled again")


def test_primary_console_shows_tables_log_keys_and_push_targets(sites, browser):
    from selenium.webdriver.common.by import By
    primary, _ = sites
    sign_in(browser, primary.url, "wrong-token-for-the-primary")
    wait(browser, lambda d: "Wrong admin token" in d.find_element(By.ID, "signin-msg").text,
         "the refusal")
    sign_in(browser, primary.url, PRIMARY_TOKEN)
    main = lambda d: d.find_element(By.CSS_SELECTOR, "#main").text  # noqa: E731
    wait(browser, lambda d: "customer" in main(d) and "ok" in main(d), "the tables page")
    shot(browser, "primary-tables")
    open_page(browser, primary.url, "#/keys", PRIMARY_TOKEN)
    wait(browser, lambda d: "main" in main(d) and "changes" in main(d), "the keys page")
    shot(browser, "primary-keys")
    open_page(browser, primary.url, "#/push", PRIMARY_TOKEN)
    wait(browser, lambda d: "delivered" in main(d), "the push page")
    shot(browser, "primary-push")
    open_page(browser, primary.url, "#/log?table=customer", PRIMARY_TOKEN)
    wait(browser, lambda d: "Newcomer" in main(d) or "Ada" in main(d), "the log tail")
    # a long snapshot is cut; its "more" button (here from the keyboard) shows all of it
    from selenium.webdriver.common.keys import Keys
    whole = HOSTILE[1].replace('"', '\\"')   # as it stands in the snapshot's JSON

    def expand(d):   # found again if the 5 s refresh replaced the page meanwhile
        more = d.find_element(By.XPATH, "//tr[td[4][.='Create']][.//td[5][contains(., 'id=666')]]"
                              "//button[contains(@class, 'more')]")
        cell = more.find_element(By.XPATH, "./ancestor::td")
        if more.get_attribute("aria-expanded") != "true":
            assert whole not in cell.text
            more.send_keys(Keys.ENTER)
        return whole in cell.text and more.get_attribute("aria-expanded") == "true"
    wait(browser, expand, "the whole snapshot")
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#main img, #main script")
    shot(browser, "primary-log")

"""Primary HTTP API: long-poll, authentication, bad input, rows/row, files, metrics."""
import os
import tempfile
import threading
import time

import requests

from harness import wait_until
from test_primary import drain, fetch, make_token, serve_with_key, site  # noqa: F401


def test_longpoll_answers_within_1s_of_commit(site):
    _, cursor = drain(site)
    result = {}

    def poll():
        t0 = time.monotonic()
        r = site.get("/api/changes", site.key, site.secret, cursor=cursor, wait=30)
        result["r"], result["t"] = r, time.monotonic()
        result["start"] = t0

    t = threading.Thread(target=poll)
    t.start()
    # the request is waiting (and holds no database connection while it does)
    wait_until(lambda: "tdgl_longpoll_waiters 1" in site.get(
        "/metrics", site.key, site.secret).text, what="a long-poll waiter")
    committed = time.monotonic()
    site.sql("INSERT INTO customer VALUES (1, 'now', 0)")
    t.join(30)
    assert result["r"].status_code == 200
    assert [c["pk"] for c in result["r"].json()["changes"]] == [{"id": 1}]
    assert result["t"] - committed < 1.0


def test_longpoll_returns_empty_at_deadline(site):
    _, cursor = drain(site)
    t0 = time.monotonic()
    ch, cursor2, more = fetch(site, cursor, wait=1)
    assert ch == [] and more is False
    assert time.monotonic() - t0 >= 0.9


def page_queries(site):
    text = site.get("/metrics", site.key, site.secret).text
    return int([ln for ln in text.splitlines()
                if ln.startswith("tdgl_page_queries_total ")][0].split()[1])


def test_an_idle_long_poll_queries_the_log_once_per_round(site):
    """Nothing committed: a 4 s long-poll asks for its page when it starts, once more when
    the watcher it woke takes its first look (it wakes everyone then), and at its deadline;
    not every second (1,000 idle replicas kept a core of the database busy: 17 here)."""
    _, cursor = drain(site)
    before = page_queries(site)
    threads = [threading.Thread(target=lambda: fetch(site, cursor, wait=4)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert page_queries(site) - before <= 3 * 3, "idle waiters re-ran their page query"


def test_longpoll_waiters_do_not_exhaust_the_pool(primary):
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, docstatus int DEFAULT 0)")
    primary.track("customer")
    site = serve_with_key(primary, "--pool-size", "2")
    _, cursor = drain(site)
    threads = [threading.Thread(target=lambda: site.get(
        "/api/changes", site.key, site.secret, cursor=cursor, wait=5)) for _ in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: "tdgl_longpoll_waiters 6" in site.get(
        "/metrics", site.key, site.secret).text, what="six waiters")
    # with six waiters and two connections, other requests still get answered at once
    r = site.get("/api/snapshot", site.key, site.secret)
    assert r.status_code == 200
    site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
    for t in threads:
        t.join(20)


def test_auth_required_everywhere_but_health(site):
    assert requests.get(site.url + "/health").json() == {"status": "ok"}
    paths = ["/api/changes", "/api/snapshot", "/api/rows?table=customer",
             "/api/row?table=customer&pk={\"id\":1}", "/api/files/x.txt", "/api/nope", "/metrics"]
    revoked_key, revoked_secret = site.keygen("old")
    assert site.get("/api/snapshot", revoked_key, revoked_secret).status_code == 200
    site.cli("revoke", revoked_key)
    bad = [None, "token nothing", f"token {site.key}:wrong", f"token {'0' * 32}:{site.secret}",
           f"token {revoked_key}:{revoked_secret}", f"Bearer {site.secret}", f"token {site.key}:"]
    for path in paths:
        for header in bad:
            headers = {"Authorization": header} if header else {}

            def answer():
                return requests.get(site.url + path, headers=headers, timeout=10)
            # revocation takes effect within a second or two (credentials are cached briefly)
            r = wait_until(lambda: (lambda r: [r] if r.status_code == 401 else None)(answer()),
                           timeout=3, what=f"401 for {path} {header}")[0]
            assert r.json() == {"error": "unauthorized"}
    assert site.get("/api/snapshot", site.key, site.secret).status_code == 200


def test_keygen_prints_key_and_secret_once(site):
    out = site.cli("keygen", "--label", "branch").stdout
    lines = out.strip().splitlines()
    assert [l.split(":")[0] for l in lines] == ["key", "secret"]
    secret = lines[1].split(":", 1)[1].strip()
    listing = site.cli("keys").stdout
    assert "branch" in listing and secret not in listing
    stored = site.one("SELECT secret_hash FROM tdgl.api_keys WHERE label = 'branch'")
    assert secret not in stored


def check_4xx(site, path, params, status=400):
    r = site.get(path, site.key, site.secret, **params)
    assert r.status_code == status, (path, params, r.status_code, r.text)
    assert isinstance(r.json().get("error"), str), (path, params)


def test_malformed_cursor_gets_400(site):
    for cursor in ["not a cursor!", make_token("v1.0..0.5:3:.0.0.0"),   # xmin > xmax
                   make_token("v9.0..0.5:9:.0.0.0"), make_token("v1.1..0.5:9:.0.0.0"),
                   make_token("v1.0..0.5:9:.3.2.0"), "A" * 70000, "djE"]:
        check_4xx(site, "/api/changes", {"cursor": cursor})
    assert fetch(site)[2] is False        # still serving


def test_limit_or_wait_out_of_range_gets_400(site):
    for params in [{"limit": "0"}, {"limit": "5001"}, {"limit": "ten"}, {"limit": "-1"},
                   {"limit": ""}, {"wait": "61"}, {"wait": "x"}, {"wait": "-1"}]:
        check_4xx(site, "/api/changes", params)
    check_4xx(site, "/api/rows", {"table": "customer", "limit": "0"})
    check_4xx(site, "/api/rows", {"table": "customer", "limit": "5001"})


def test_unknown_table_gets_400(site):
    site.sql("CREATE TABLE untracked (id int PRIMARY KEY)")
    for tables in ["nosuch", "customer,,x", "tdgl.change_log", "untracked", ","]:
        check_4xx(site, "/api/changes", {"tables": tables})
    for table in ["nosuch", "untracked", "tdgl.api_keys", "x" * 300]:
        check_4xx(site, "/api/rows", {"table": table})
        check_4xx(site, "/api/row", {"table": table, "pk": '{"id":1}'})
    check_4xx(site, "/api/rows", {})


def test_bad_pk_json_gets_400(site):
    for pk in ["nope", "{bad json", "[1]", '{"name":1}', '{"id":"abc"}', '{"id":1,"id":2}',
               '{"id":null}', '{"id":{"a":1}}', "1"]:
        check_4xx(site, "/api/row", {"table": "customer", "pk": pk})
        check_4xx(site, "/api/rows", {"table": "customer", "after": pk})
    check_4xx(site, "/api/row", {"table": "customer"})
    for flt in ['{"nosuchcol":1}', "[]", "{", '{"id":"x"}']:
        check_4xx(site, "/api/rows", {"table": "customer", "filter": flt})
    check_4xx(site, "/api/row", {"table": "customer", "pk": '{"id":99}'}, status=404)


def test_oversized_params_get_400(site):
    check_4xx(site, "/api/rows", {"table": "customer", "after": '{"id":' + "1" * 9000 + "}"})
    check_4xx(site, "/api/changes", {"tables": "a," * 5000})
    check_4xx(site, "/api/rows", {"table": "customer", "filter": '{"a":"' + "x" * 9000 + '"}'})


def test_oversized_request_is_refused(site):
    r = requests.get(site.url + "/api/changes", params={"cursor": "A" * 2_000_000},
                     headers={"Authorization": f"token {site.key}:{site.secret}"}, timeout=30)
    assert 400 <= r.status_code < 500
    r = requests.post(site.url + "/api/changes", data=b"x" * 2_000_000, timeout=30,
                      headers={"Authorization": f"token {site.key}:{site.secret}"})
    assert 400 <= r.status_code < 500
    assert requests.get(site.url + "/health").status_code == 200


def test_cursor_ahead_of_database_gets_410(site):
    # a cursor from a database that has seen far more transactions (restored from backup)
    future = make_token("v1.0..0.50000000:50000000:.0.0.0")
    r = fetch(site, future, expect=410)
    assert "cursor expired" in r.json()["error"]


def test_rows_pages_in_key_order_with_filter(site):
    site.sql("INSERT INTO customer SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, 0"
             " FROM generate_series(1, 23) g")
    got, after = [], None
    while True:
        params = {"table": "customer", "limit": 5}
        if after is not None:
            params["after"] = __import__("json").dumps(after)
        j = site.get("/api/rows", site.key, site.secret, **params).json()
        got += j["rows"]
        after = j["next"]
        if after is None:
            break
    assert [r["id"] for r in got] == list(range(1, 24))
    j = site.get("/api/rows", site.key, site.secret, table="customer",
                 filter='{"name":"even"}').json()
    assert [r["id"] for r in j["rows"]] == list(range(2, 24, 2)) and j["next"] is None


def test_rows_composite_key_pages(site):
    site.sql("CREATE TABLE line (doc text, line int, PRIMARY KEY (doc, line))")
    site.track("line")
    site.sql("INSERT INTO line SELECT 'D' || (g / 3), g % 3 FROM generate_series(0, 10) g")
    got, after = [], None
    while True:
        params = {"table": "line", "limit": 2}
        if after is not None:
            params["after"] = __import__("json").dumps(after)
        j = site.get("/api/rows", site.key, site.secret, **params).json()
        got += [(r["doc"], r["line"]) for r in j["rows"]]
        after = j["next"]
        if after is None:
            break
    assert got == sorted(site.sql("SELECT doc, line FROM line"))


def test_row_returns_row_or_404(site):
    site.sql("INSERT INTO customer VALUES (7, 'Seven', 1)")
    r = site.get("/api/row", site.key, site.secret, table="customer", pk='{"id":7}')
    assert r.status_code == 200
    assert r.json() == {"row": {"id": 7, "name": "Seven", "docstatus": 1}}
    r = site.get("/api/row", site.key, site.secret, table="customer", pk='{"id":8}')
    assert r.status_code == 404 and "error" in r.json()


def test_files_served_without_escape_from_root(primary):
    root = tempfile.mkdtemp(prefix="tdgl-files-")
    outside = tempfile.mkdtemp(prefix="tdgl-outside-")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "sub", "a.txt"), "w") as f:
        f.write("hello")
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("top secret")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "link.txt"))
    os.symlink(outside, os.path.join(root, "dirlink"))
    site = serve_with_key(primary, "--files-dir", root)
    auth = {"Authorization": f"token {site.key}:{site.secret}"}
    r = requests.get(site.url + "/api/files/sub/a.txt", headers=auth, timeout=10)
    assert r.status_code == 200 and r.content == b"hello"
    for path in ["/api/files/../" + os.path.basename(outside) + "/secret.txt",
                 "/api/files/%2e%2e/%2e%2e/etc/passwd", "/api/files/sub/%2e%2e/%2e%2e/etc/passwd",
                 "/api/files/..%2f..%2fetc%2fpasswd", "/api/files//etc/passwd",
                 "/api/files/%2fetc%2fpasswd", "/api/files/link.txt", "/api/files/dirlink/secret.txt",
                 "/api/files/sub", "/api/files/sub/", "/api/files/nope.txt", "/api/files/",
                 "/api/files/sub/a.txt%00.png", "/api/files/%252e%252e/etc/passwd"]:
        # raw request so the client does not normalise the path
        s = requests.Session()
        req = requests.Request("GET", site.url + path, headers=auth).prepare()
        req.url = site.url + path
        r = s.send(req, timeout=10)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert b"top secret" not in r.content and b"root:" not in r.content
    assert requests.get(site.url + "/api/files/sub/a.txt", timeout=10).status_code == 401


def test_metrics_exposed(site):
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    drain(site)
    text = site.get("/metrics", site.key, site.secret).text
    for name in ["tdgl_changes_served_total 1", "tdgl_changes_captured_total 1",
                 'tdgl_http_requests_total{code="200"}', "tdgl_longpoll_waiters 0",
                 "tdgl_push_sent_total 0", "tdgl_change_log_rows", "tdgl_change_log_oldest_age_seconds"]:
        assert name in text
    assert requests.get(site.url + "/metrics").status_code == 401


def test_wrong_method_gets_405(site):
    r = requests.post(site.url + "/api/changes", timeout=10,
                      headers={"Authorization": f"token {site.key}:{site.secret}"})
    assert r.status_code == 405 and "error" in r.json()


def test_longpoll_wakes_when_an_older_transaction_commits(site):
    """The commit of a transaction holding smaller ids does not move max(id): the head watch
    must still notice it (by txid), and the long-poll answer within a second."""
    t1 = site.cluster.connect(site.dbname, autocommit=False)
    try:
        t1.cursor().execute("INSERT INTO customer VALUES (1, 'T1', 0)")
        site.sql("INSERT INTO customer VALUES (2, 'T2', 0)")
        _, cursor = drain(site)
        result = {}

        def poll():
            r = site.get("/api/changes", site.key, site.secret, cursor=cursor, wait=30)
            result["r"], result["t"] = r, time.monotonic()

        t = threading.Thread(target=poll)
        t.start()
        wait_until(lambda: "tdgl_longpoll_waiters 1" in site.get(
            "/metrics", site.key, site.secret).text, what="a long-poll waiter")
        committed = time.monotonic()
        t1.commit()
        t.join(30)
        assert [c["pk"] for c in result["r"].json()["changes"]] == [{"id": 1}]
        assert result["t"] - committed < 1.0
    finally:
        t1.close()


def test_a_page_ends_at_its_byte_budget_and_the_rest_follows_in_order(site):
    # 24 rows of ~1 MB among small ones, in one transaction and in separate ones: a page of
    # up to 5000 changes stops once its rows hold 8 MiB (common/limits.h), nothing is lost,
    # repeated or reordered
    big = "x" * (1 << 20)
    site.sql("BEGIN; INSERT INTO customer SELECT g, CASE WHEN g %% 5 = 0 THEN %s ELSE 's' END"
             " FROM generate_series(1, 60) g; COMMIT", (big,))
    for i in range(61, 73):
        site.sql("INSERT INTO customer VALUES (%s, %s)", (i, big if i % 2 else "s"))
    pages, cursor, got = [], None, []
    while True:
        ch, cursor, more = fetch(site, cursor, limit=5000)
        pages.append(ch)
        got += ch
        if not more:
            break
    assert [c["pk"]["id"] for c in got] == list(range(1, 73))
    assert len(pages) >= 3                       # 18 big rows: ~18 MiB in pages of 8 MiB
    for ch in pages[:-1]:
        sizes = [len(c["row"]["name"]) for c in ch]
        assert sum(sizes[:-1]) < 8 << 20         # the last row started within the budget

"""Attacks on the replica (issue 7, scenarios 13, 15-19, 24, 25): forged and replayed pushes,
malformed JSON from admins and from a (fake) primary, oversized and slow requests, SQL
injection through names and admin parameters, column names that shadow query aliases,
attachment paths that try to leave the files directory, clock skew, secret leaks."""
import json
import os
import socket
import tempfile
import time

import pytest
import requests

from harness import StubHTTP, wait_until
from sites import ADMIN_TOKEN, SECRET_KEY
from test_attack_primary import raw_exchange, raw_request, status_of
from test_replica import CUSTOMER, pair, pull, rows_md5
from test_replica_serve import PUSH, signed, source_ready

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def runs(replica):
    return replica.one("SELECT count(*) FROM tdgl_replica.runs")


def admin(replica):
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# ---- 13: forged and replayed pushes ----

def test_forged_or_replayed_push_is_refused_and_changes_nothing(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve()
    source_ready(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    url = replica.url + "/api/notify"
    body = '{"event":"changes","head":1}'
    now = int(time.time())
    good = signed(body)
    sig = good["X-TDGL-Signature"]
    hexsig = sig.split("=", 1)[1]
    before = runs(replica)
    cases = {
        "bad hmac": (body, signed(body, secret="wrong")),
        "other body": ('{"event":"changes","head":2}', good),
        "stale": (body, signed(body, ts=now - 330)),
        "future": (body, signed(body, ts=now + 330)),
        "no signature": (body, {"X-TDGL-Timestamp": str(now)}),
        "no timestamp": (body, {"X-TDGL-Signature": sig}),
        "nothing": (body, {}),
        "no prefix": (body, dict(good, **{"X-TDGL-Signature": hexsig})),
        "upper hex": (body, dict(good, **{"X-TDGL-Signature": "sha256=" + hexsig.upper()})),
        "sha1 label": (body, dict(good, **{"X-TDGL-Signature": "sha1=" + hexsig})),
        "trailing space": (body, dict(good, **{"X-TDGL-Signature": sig + " "})),
        "truncated": (body, dict(good, **{"X-TDGL-Signature": sig[:-2]})),
        "timestamp changed": (body, dict(good, **{"X-TDGL-Timestamp": str(now + 1)})),
        "ts exponent": (body, dict(signed(body), **{"X-TDGL-Timestamp": "1.7e9"})),
        "ts huge": (body, signed(body, ts="99999999999999999999999")),
        "ts negative": (body, signed(body, ts="-1")),
        "empty body": ("", good),
        "secret as signature": (body, dict(good, **{"X-TDGL-Signature": PUSH})),
    }
    bad = {}
    for name, (b, h) in cases.items():
        r = requests.post(url, data=b, headers=h, timeout=5)
        if r.status_code != 401 or "error" not in r.json():
            bad[name] = (r.status_code, r.text[:100])
    assert not bad, bad
    assert runs(replica) == before, "a refused notify started a pull"
    # the real one works once; its replay is refused
    assert requests.post(url, data=body, headers=good, timeout=5).status_code == 202
    wait_until(lambda: replica.one("SELECT count(*) FROM customer") == 1, timeout=10)
    r = requests.post(url, data=body, headers=good, timeout=5)
    assert r.status_code in (401, 409) and "error" in r.json()
    # wrong method and a GET with a valid signature are refused too
    assert requests.get(url, headers=good, timeout=5).status_code in (401, 405)
    assert replica.server.proc.poll() is None


# ---- 15: malformed JSON from admins ----

DEEP = "[" * 10000 + "]" * 10000


def test_admin_api_malformed_json_gets_400_and_changes_nothing(primary, replica):
    key, secret = pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    replica.serve()
    source_ready(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 1")
    primary.sql("UPDATE customer SET name = 'p' WHERE id = 1")
    pull(replica)
    cid = replica.one("SELECT id FROM tdgl_replica.conflicts")
    sources = replica.api("GET", "/api/sources").json()
    base = {"name": "second", "url": primary.url, "key": key, "secret": secret,
            "tables": "customer"}
    bodies = [
        b"", b"{", b'{"name": "x"', b"\xff\xfe", b'{"name": "\xc3\x28"}', b"null", b"[]",
        b'"str"', b"1e999999", DEEP.encode(), ("{" + '"a":' * 5000 + "1" + "}" * 5000).encode(),
        json.dumps(dict(base, name="a")).replace('"name"', '"name": "b", "name"', 1).encode(),
        json.dumps(dict(base, batch_size=1e300)).encode(),
        json.dumps(dict(base, batch_size=-1)).encode(),
        json.dumps(dict(base, batch_size=1.5)).encode(),
        json.dumps(dict(base, batch_size="10")).encode(),
        json.dumps(dict(base, poll_interval=99999999999999999999)).encode(),
        json.dumps(dict(base, batch_size=100000)).encode(),
        json.dumps(dict(base, name=None)).encode(),
        json.dumps(dict(base, name=123)).encode(),
        json.dumps(dict(base, tables=["customer"])).encode(),
        json.dumps(dict(base, filters="customer={}")).encode(),
        json.dumps(dict(base, filters=['customer={"a":']) ).encode(),
        json.dumps(dict(base, filters=["customer=[1]"])).encode(),
        json.dumps(dict(base, long_poll="yes")).encode(),
        json.dumps(dict(base, url="file:///etc/passwd")).encode(),
        json.dumps(dict(base, url="not a url")).encode(),
        b'{"name":"x\\u0000y","url":"http://h","key":"k","secret":"s","tables":"customer"}',
    ]
    bad = []
    for b in bodies:
        r = replica.api("POST", "/api/sources", data=b)
        if r.status_code not in (400, 409, 413, 422) or "error" not in r.json():
            bad.append((b[:80], r.status_code, r.text[:120]))
    resolves = [b"", b"{", b"[]", b'{"resolution": 1}', b'{"resolution": "Accept"}',
                b'{"resolution": "Accept Primary", "resolution": "Keep Local"}',
                b"\xff", DEEP.encode(), b'{"resolution": "Keep Local\\u0000"}']
    for b in resolves:
        r = replica.api("POST", f"/api/conflicts/{cid}/resolve", data=b)
        if r.status_code not in (400, 422) or "error" not in r.json():
            bad.append(("resolve", b[:60], r.status_code, r.text[:120]))
    for path in ("/api/conflicts/1e3/resolve", "/api/conflicts/-1/resolve",
                 "/api/conflicts/99999999999999999999/resolve", "/api/conflicts/1;DROP/resolve",
                 "/api/conflicts/%00/resolve", "/api/conflicts//resolve"):
        r = replica.api("POST", path, data=b'{"resolution": "Keep Local"}')
        if not 400 <= r.status_code < 500 or "error" not in r.json():
            bad.append((path, r.status_code, r.text[:120]))
    for path in ("/api/log?status=Nope", "/api/log?run_id=abc", "/api/log?limit=-5",
                 "/api/runs?limit=1e9", "/api/conflicts?status=%27%20OR%201=1%20--",
                 "/api/conflicts?limit=99999999999999999999999", "/api/log?status=%ff"):
        r = replica.api("GET", path)
        if r.status_code != 400 or "error" not in r.json():
            bad.append((path, r.status_code, r.text[:120]))
    assert not bad, "\n".join(map(repr, bad))
    assert replica.api("GET", "/api/sources").json() == sources
    assert replica.one("SELECT status FROM tdgl_replica.conflicts") == "Open"
    assert replica.server.proc.poll() is None


# ---- 15: malformed pages from a primary ----

class FakePrimary(StubHTTP):
    """Answers /api/snapshot and /api/rows like an empty primary, and /api/changes with
    whatever body the test sets."""

    ANSWERS = {"/health": b'{"status":"ok"}', "/api/snapshot": b'{"cursor":"c0"}',
               "/api/rows": b'{"rows":[],"next":null}'}

    def __init__(self):
        self.changes = (200, b'{"changes":[],"cursor":"c0","more":false}')
        self.paths = []     # every path requested, in order
        super().__init__(self._answer)

    def _answer(self, req):
        self.paths.append(req.path)
        if req.path == "/api/changes":
            return self.changes
        if req.path in self.ANSWERS:
            return 200, self.ANSWERS[req.path]
        return 404, b'{"error":"not found"}'


def _change(i, **over):
    c = {"id": i, "table": "customer", "op": "Create", "pk": {"id": i}, "old_pk": None,
         "row": {"id": i, "name": f"n{i}", "company": "X", "amount": 1},
         "changed_at": "2026-01-01T00:00:00+00:00"}
    c.update(over)
    return c


def _page(changes, cursor="c1", more=False):
    return json.dumps({"changes": changes, "cursor": cursor, "more": more}).encode()


def test_malformed_pages_from_primary_apply_nothing(replica):
    fake = FakePrimary()
    try:
        replica.sql(CUSTOMER)
        replica.cli("source", "add", "main", "--url", fake.url, "--key", "k" * 32,
                    "--secret", "s" * 64, "--tables", "customer", "--batch-size", "100")
        pull(replica)
        good = [_change(i) for i in range(1, 6)]
        whole = _page(good)
        pages = {
            "truncated": whole[:-20],
            "invalid utf-8": whole.replace(b'"n1"', b'"\xff\xfe"'),
            "overlong utf-8": whole.replace(b'"n1"', b'"\xc0\xaf"'),
            "duplicate top-level key": whole[:-1] + b',"cursor":"c9"}',
            "nested 10000": whole.replace(b'"n1"', DEEP.encode()),
            "trailing garbage": whole + b"xyz",
            "NUL byte": whole.replace(b'"n1"', b'"n\x001"'),
            "changes not array": _page({"a": 1}),
            "cursor number": json.dumps({"changes": good, "cursor": 5, "more": False}).encode(),
            "cursor missing": json.dumps({"changes": good, "more": False}).encode(),
            "cursor empty": _page(good, cursor=""),
            "not json at all": b"<html>502 Bad Gateway</html>",
            "empty": b"",
        }
        for name, body in pages.items():
            fake.changes = (200, body)
            cursor = replica.one("SELECT cursor FROM tdgl_replica.sources")
            r = pull(replica, check=False)
            assert r.get("status") == "Failed", (name, r)
            assert replica.one("SELECT count(*) FROM customer") == 0, f"{name}: rows applied"
            assert replica.one("SELECT cursor FROM tdgl_replica.sources") == cursor, name
        # single bad changes inside a well-formed page: isolated, the rest applies
        odd = [_change(1), _change(2, op="Explode"), _change(3, row="not an object"),
               _change(4, pk={"id": "four"}, row={"id": "four"}),
               _change(5, table="not_configured"), _change(6, id=1e300),
               _change(7, row={"id": 7, "amount": 1e400}), _change(8)]
        fake.changes = (200, _page(odd, cursor="c2"))
        r = pull(replica, check=False)
        assert r.get("status") in ("Partial", "Failed", "Success"), r
        got = {i for (i,) in replica.sql("SELECT id FROM customer")}
        assert {1, 8} <= got or got == set(), got
        assert replica.server is None or replica.server.proc.poll() is None
    finally:
        fake.close()


# ---- 16 / 17: oversized and slow requests on the admin API ----

def test_admin_api_oversized_and_slow_requests_refused_server_healthy(replica):
    replica.serve()
    url = replica.url
    a = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
    out = raw_exchange(url, b"POST /api/sources HTTP/1.1\r\nHost: x\r\n" + a +
                       b"Content-Length: 5000000\r\n\r\n" + b"{" * 100000)
    assert status_of(out) == 413, out[:200]
    out = raw_exchange(url, b"POST /api/sources HTTP/1.1\r\nHost: x\r\n" + a +
                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                       b"".join(b"10000\r\n" + b"[" * 0x10000 + b"\r\n" for _ in range(40)) +
                       b"0\r\n\r\n")
    assert status_of(out) == 413, out[:200]
    out = raw_exchange(url, b"POST /api/notify HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 5\r\nContent-Length: 50\r\n\r\n12345")
    assert status_of(out) in (400, 413), out[:200]
    out = raw_exchange(url, b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Big: " +
                       b"h" * 300000 + b"\r\n\r\n")
    assert status_of(out) in (400, 413, 414, 431) or out == b"", out[:200]
    # slowloris on the admin API (from another address: one address may hold only a quarter
    # of the slots) while the admin keeps working
    socks = []
    try:
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", replica.server.port), timeout=5,
                                         source_address=(f"127.0.0.{2 + i % 4}", 0))
            s.sendall(b"POST /api/notify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                      if i % 2 else b"GET /api/status HTTP/1.1\r\n")
            socks.append(s)
        for _ in range(5):
            t0 = time.monotonic()
            r = replica.api("GET", "/api/status")
            assert r.status_code == 200
            assert time.monotonic() - t0 < 2.0
    finally:
        for s in socks:
            s.close()
    assert requests.get(url + "/health", timeout=5).status_code == 200


# ---- 18: SQL injection through names and admin parameters; columns that shadow aliases ----

def test_sql_injection_through_source_table_and_filter_names_refused(primary, replica):
    key, secret = pair(primary, replica, CUSTOMER, ["customer"])
    replica.sql("CREATE TABLE canary (id int PRIMARY KEY)")
    replica.sql("INSERT INTO canary VALUES (1), (2)")
    attempts = [
        ["source", "add", 'x"; DROP TABLE canary; --', "--url", primary.url, "--key", key,
         "--secret", secret, "--tables", "customer"],
        ["source", "add", "s2", "--url", primary.url, "--key", key, "--secret", secret,
         "--tables", "customer; DROP TABLE canary"],
        ["source", "add", "s3", "--url", primary.url, "--key", key, "--secret", secret,
         "--tables", 'customer"; DROP TABLE canary; --'],
        ["source", "add", "s4", "--url", primary.url, "--key", key, "--secret", secret,
         "--tables", "customer\u02bc"],
        ["source", "add", "s5", "--url", primary.url, "--key", key, "--secret", secret,
         "--tables", "customer", "--filter", 'customer={"name\\"; DROP TABLE canary; --": 1}'],
        ["source", "add", "s6", "--url", primary.url, "--key", key, "--secret", secret,
         "--tables", "customer", "--filter", "customer='; DROP TABLE canary; --"],
        ["source", "remove", "main'; DROP TABLE canary; --"],
        ["resolve", "1; DROP TABLE canary", "keep-local"],
        ["log", "--status", "Failed' OR '1'='1"],
        ["runs", "--source", "main' OR '1'='1"],
    ]
    for args in attempts:
        r = replica.cli(*args, check=False)
        assert "Traceback" not in r.stderr
        assert replica.one("SELECT count(*) FROM canary") == 2, args
    # what was accepted is stored as plain data; pulling it damages nothing
    for (name,) in replica.sql("SELECT name FROM tdgl_replica.sources"):
        assert name in ("main", "s2", "s3", "s4", "s5"), name
        replica.cli("pull", name, check=False)
        assert replica.one("SELECT count(*) FROM canary") == 2, name
    # a filter whose column does not exist never matches by accident nor breaks out
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    assert replica.one("SELECT count(*) FROM canary") == 2


SHADOW_COLS = ["t", "p", "o", "l", "lo", "ln", "r", "f", "w", "ch", "rec", "orec", "k", "x",
               "q", "e", "n", "s", "row", "ord", "op", "pk", "old_pk", "skip", "present",
               "cls", "ctid_", "tdgl", "src"]


def test_column_names_that_shadow_query_aliases_replicate(primary, replica):
    cols = ", ".join(f'"{c}" text' for c in SHADOW_COLS)
    ddl = f'CREATE TABLE "select" (id int PRIMARY KEY, {cols})'
    primary.sql(ddl)
    replica.sql(ddl)
    primary.track('"select"')            # SQL name syntax on the CLI; API name: select
    primary.serve()
    key, secret = primary.keygen()
    replica.cli("source", "add", "main", "--url", primary.url, "--key", key, "--secret", secret,
                "--tables", "select")
    vals = ", ".join(f"'{c}-v'" for c in SHADOW_COLS)
    primary.sql(f'INSERT INTO "select" VALUES (1, {vals}), (2, {vals})')
    r = pull(replica, check=False)
    assert r.get("status") == "Success", r
    primary.sql(f'INSERT INTO "select" VALUES (3, {vals})')
    primary.sql('UPDATE "select" SET "t" = \'changed\', "p" = NULL WHERE id = 1')
    primary.sql('UPDATE "select" SET id = 30 WHERE id = 3')
    primary.sql('DELETE FROM "select" WHERE id = 2')
    r = pull(replica, check=False)
    assert r.get("status") == "Success" and r.get("failed") == 0, r
    assert rows_md5(replica, '"select"') == rows_md5(primary, '"select"')
    # a local edit and a conflict on the same table
    replica.sql('UPDATE "select" SET "o" = \'local\' WHERE id = 1')
    primary.sql('UPDATE "select" SET "o" = \'primary\' WHERE id = 1')
    r = pull(replica, check=False)
    assert r.get("conflicts") == 1, r
    cid = replica.one("SELECT id FROM tdgl_replica.conflicts")
    replica.cli("resolve", str(cid), "accept-primary")
    assert rows_md5(replica, '"select"') == rows_md5(primary, '"select"')


# ---- 19: attachment paths ----

def test_attachment_paths_never_write_outside_the_files_dir(primary, replica):
    pdir = tempfile.mkdtemp(prefix="tdgl-pfiles-")
    # the files dir's parent is this test's own: "../x" must not be found there, and a shared
    # /tmp may hold anyone's x
    rdir = os.path.join(tempfile.mkdtemp(prefix="tdgl-rparent-"), "files")
    os.mkdir(rdir)
    outside = tempfile.mkdtemp(prefix="tdgl-outside-")
    os.makedirs(os.path.join(pdir, "inv"))
    os.makedirs(os.path.join(pdir, "link"))
    for p in ("inv/a.txt", "link/b.txt"):
        with open(os.path.join(pdir, p), "w") as f:
            f.write("body")
    # an existing symlink inside the replica's files dir that points outside it
    os.symlink(outside, os.path.join(rdir, "link"))
    ddl = "CREATE TABLE doc (id int PRIMARY KEY, file text)"
    primary.sql(ddl)
    replica.sql(ddl)
    primary.track("doc", "--attach-columns", "file")
    primary.serve("--files-dir", pdir)
    key, secret = primary.keygen()
    replica.cli("source", "add", "main", "--url", primary.url, "--key", key, "--secret", secret,
                "--tables", "doc", "--attach", "doc=file")
    evil = ["/files/../x", "/files/%2e%2e/x", "/files/inv/../../x", "/files/inv/%2e%2e%2f..%2fx",
            "/files/%252e%252e/x", "/files/..\\x", "/files/\x01", "/files/C:\\x",
            f"/files/{outside}/x", "/files//etc/passwd", "/files/link/b.txt",
            "/files/inv/a.txt%00.png", "/files/" + "a/" * 600 + "x", "/files/.", "/files/"]
    primary.sql("INSERT INTO doc SELECT g, f FROM unnest(%s::text[]) WITH ORDINALITY AS u(f, g)",
                (evil + ["/files/inv/a.txt"],))
    r = replica.cli("pull", "main", env={"TDGL_FILES_DIR": rdir}, check=False)
    assert "Traceback" not in r.stderr
    assert os.listdir(outside) == [], "a file was written outside the files dir"
    parent = os.path.dirname(rdir)
    assert not os.path.exists(os.path.join(parent, "x"))
    with open(os.path.join(rdir, "inv", "a.txt")) as f:
        assert f.read() == "body"
    assert replica.one("SELECT count(*) FROM doc") == len(evil) + 1


# ---- 24: clock skew ----

@pytest.mark.parametrize("skew", ["+10m", "-10m"])
def test_clock_skew_only_affects_push_window_and_is_reported(primary, replica, skew):
    if not os.path.exists(FAKETIME_LIB):
        pytest.fail("faketime is not installed (Debian package faketime)")
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "1",
         "--push-secret", PUSH)
    # under `make SANITIZE=1` the ASan runtime must tolerate faketime being preloaded first
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    replica.serve(env={"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": skew,
                       "FAKETIME_DONT_FAKE_MONOTONIC": "1", "ASAN_OPTIONS": asan})
    primary.cli("push", "add", replica.url, "--secret", PUSH)
    source_ready(replica)
    # pulls, applies, runs and retries work on the skewed clock
    for i in range(1, 4):
        primary.sql("INSERT INTO customer VALUES (%s, 'a', 'X', 1)", (i,))
        replica.wait_rows(f"SELECT count(*) FROM customer WHERE id = {i}", [(1,)], timeout=20)
    assert rows_md5(replica, "customer") == rows_md5(primary, "customer")
    # the push signature window is the one thing a 10-minute skew breaks: clearly reported
    wait_until(lambda: "notify refused" in replica.server.log(), timeout=20,
               what="a refused push")
    line = [ln for ln in replica.server.log().splitlines() if "notify refused" in ln][-1]
    assert "skew" in line and ("600" in line or "599" in line or "601" in line), line
    # intervals and deadlines are on the monotonic clock: the 5-minute purge has not come due
    # (on the wall clock's deadlines it ran every millisecond), and the shutdown joins every
    # worker (a wall-clock join deadline gave up at once and exited under a running worker)
    assert "purge: deleted" not in replica.server.log()
    assert replica.server.stop() == 0
    assert "stopped" in replica.server.log().splitlines()[-1]


# ---- 25: secrets ----

def test_replica_secrets_never_in_logs_bodies_metrics_or_argv(primary, replica):
    primary.sql(CUSTOMER)
    replica.sql(CUSTOMER)
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen("r")
    replica.serve(env={"TDGL_LOG_FORMAT": "json"})
    body = {"name": "main", "url": primary.url, "key": key, "secret": secret,
            "tables": "customer", "push_secret": PUSH}
    resp = replica.api("POST", "/api/sources", json=body)
    assert resp.status_code == 201, resp.text
    source_ready(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    replica.api("POST", "/api/sources/main/pull")
    outputs = [resp.text]
    for path in ("/api/sources", "/api/status", "/api/runs", "/api/log", "/metrics",
                 "/api/conflicts", "/api/sources/nope/pull", "/api/nope"):
        outputs.append(replica.api("GET", path).text)
    # failed admin auth with secrets in the header, a forged notify signed with the API secret
    for h in (f"Bearer {secret}", f"Bearer {ADMIN_TOKEN}x", f"token {key}:{secret}"):
        outputs.append(requests.get(replica.url + "/api/status", headers={"Authorization": h},
                                    timeout=5).text)
    b = '{"event":"changes","head":1}'
    outputs.append(requests.post(replica.url + "/api/notify", data=b,
                                 headers=signed(b, secret=secret), timeout=5).text)
    # a second source with a bad secret: its failure must not echo it
    replica.api("POST", "/api/sources", json=dict(body, name="bad", secret="WRONG-" + secret))
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE source = 'bad'"),
               timeout=20)
    for args in (("source", "list"), ("status",), ("runs",), ("log",)):
        p = replica.cli(*args, check=False)
        outputs.append(p.stdout + p.stderr)
    with open(f"/proc/{replica.server.proc.pid}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace")
    stored = replica.sql("SELECT api_secret_sealed, coalesce(push_secret_sealed, '') "
                         "FROM tdgl_replica.sources")
    replica.server.stop()
    log = replica.server.log()
    for s in (secret, PUSH, ADMIN_TOKEN, SECRET_KEY):
        assert s not in log, "secret in the replica log"
        assert s not in argv
        for o in outputs:
            assert s not in o, f"secret in an answer: {o[:200]}"
        for row in stored:
            assert all(s not in v for v in row), "secret stored in clear"

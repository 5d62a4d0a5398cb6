"""Attacks on the primary's HTTP API (issue 7, scenarios 14-19 and 25): wrong credentials,
malformed parameters, oversized requests, slow clients, SQL injection, path traversal and
secret leaks. Each test ends by checking that the server still answers normally.

Raw sockets (http.client, socket) are used where requests would normalise or refuse what an
attacker sends. Helpers here (raw_request, assert_json_error, healthy) are shared by the
other test_attack_* / test_fault_* files."""
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse

import pytest
import requests

from harness import wait_until


# ---- helpers shared by test_attack_* and test_fault_* ----

def raw_request(url, method, target, headers=None, body=None, timeout=10):
    """Sends target (path + query) verbatim; returns (status, headers dict, body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_exchange(url, data, timeout=10):
    """Writes raw bytes to the server, returns everything it answers until it closes."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def status_of(raw):
    """The status code of a raw HTTP answer (0 when there is none)."""
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def assert_json_error(r, status):
    """r: requests.Response; a JSON {"error": "..."} with the given status (int or set)."""
    ok = r.status_code in status if isinstance(status, (set, tuple, list)) else \
        r.status_code == status
    assert ok, f"{r.status_code} {r.url}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    j = r.json()
    assert isinstance(j.get("error"), str) and j["error"], r.text


def healthy(site, key=None, secret=None):
    """The server answers /health and (with a key) a normal /api/changes."""
    assert requests.get(site.url + "/health", timeout=5).json() == {"status": "ok"}
    if key:
        r = site.get("/api/changes", key, secret)
        assert r.status_code == 200, r.text
        return r.json()
    return None


def auth(key, secret):
    return {"Authorization": f"token {key}:{secret}"}


@pytest.fixture
def site(primary):
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text,"
                " docstatus int NOT NULL DEFAULT 0)")
    primary.sql("CREATE TABLE canary (id int PRIMARY KEY, v text)")
    primary.sql("INSERT INTO canary SELECT g, 'c' || g FROM generate_series(1, 5) g")
    primary.track("customer")
    primary.serve()
    primary.key, primary.secret = primary.keygen()
    return primary


def canary_intact(site):
    assert site.sql("SELECT id, v FROM canary ORDER BY id") == \
        [(i, f"c{i}") for i in range(1, 6)]


# ---- 14: credentials ----

def test_bad_revoked_and_foreign_credentials_get_identical_401(site):
    other_key, other_secret = site.keygen("other replica")
    gone_key, gone_secret = site.keygen("revoked replica")
    site.cli("revoke", gone_key)
    site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
    # every credential works before: the cache must not keep a revoked key alive past 1 s
    cases = {
        "no header": None,
        "unknown key": f"token {'0' * 32}:{site.secret}",
        "bad secret": f"token {site.key}:{'f' * 64}",
        "another replica's secret": f"token {site.key}:{other_secret}",
        "revoked": f"token {gone_key}:{gone_secret}",
        "empty secret": f"token {site.key}:",
        "no colon": f"token {site.key}",
        "bearer scheme": f"Bearer {site.key}:{site.secret}",
        "basic scheme": "Basic YWRtaW46YWRtaW4=",
        "secret with spaces": f"token {site.key}:{site.secret} ",
        "secret prefix": f"token {site.key}:{site.secret[:-1]}",
        "upper-case key": f"token {site.key.upper()}:{site.secret}",
        "huge": f"token {site.key}:{'a' * 5000}",
        "non-ascii": f"token {site.key}:\u00e9".encode().decode("latin-1"),
    }
    answers = {}
    for path in ("/api/changes", "/api/snapshot", "/api/rows?table=customer",
                 "/api/row?table=customer&pk=%7B%22id%22%3A1%7D", "/api/files/a.txt",
                 "/api/nope", "/metrics"):
        for name, header in cases.items():
            h = {"Authorization": header} if header is not None else {}
            status, hdrs, body = raw_request(site.url, "GET", path, h)
            answers[(path, name)] = (status, hdrs.get("content-type"), body)
    distinct = set(answers.values())
    assert distinct == {(401, "application/json", b'{"error":"unauthorized"}')}, \
        {k: v for k, v in answers.items() if v != (401, "application/json",
                                                  b'{"error":"unauthorized"}')}
    # the other key itself works, and the revoked one keeps failing after the cache window
    assert site.get("/api/changes", other_key, other_secret).status_code == 200
    assert site.get("/api/changes", gone_key, gone_secret).status_code == 401
    healthy(site, site.key, site.secret)


def test_key_revoked_while_in_use_is_refused_within_cache_window(site):
    key, secret = site.keygen("soon revoked")
    assert site.get("/api/changes", key, secret).status_code == 200
    site.cli("revoke", key)
    wait_until(lambda: site.get("/api/changes", key, secret).status_code == 401, timeout=5,
               what="revoked key refused")
    r = site.get("/api/changes", key, secret)
    assert r.json() == {"error": "unauthorized"}


# ---- 15: malformed parameters ----

def _bad_params(site):
    import base64
    good = site.get("/api/changes", site.key, site.secret, limit=1).json()["cursor"]
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)).decode()

    def tok(text):
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    deep = "[" * 10000 + "]" * 10000
    deep_obj = '{"id":' * 3000 + "1" + "}" * 3000
    return [
        ("/api/changes", {"cursor": good[:-3]}),
        ("/api/changes", {"cursor": good[:-1]}),
        ("/api/changes", {"cursor": good + "A"}),
        ("/api/changes", {"cursor": good + "=="}),
        ("/api/changes", {"cursor": "%ff%fe"}),
        ("/api/changes", {"cursor": "\u00e9\u00e9\u00e9\u00e9"}),
        ("/api/changes", {"cursor": tok(raw.replace("v1", "v2", 1))}),
        ("/api/changes", {"cursor": tok(raw + ".1")}),
        ("/api/changes", {"cursor": tok(raw.replace(".0.", ".-1.", 1))}),
        ("/api/changes", {"cursor": tok("v1.0..0.5:3:.0.0.0")}),           # xmin > xmax
        ("/api/changes", {"cursor": tok("v1.0..0.3:9:9.0.0.0")}),          # xip >= xmax
        ("/api/changes", {"cursor": tok("v1.0..0.3:9:5,4.0.0.0")}),        # xips unsorted
        ("/api/changes", {"cursor": tok("v1.0..0.1:1:.99999999999999999999999.0.0")}),
        ("/api/changes", {"cursor": tok("v1.0..0.1:99999999999999999999:.0.0.0")}),
        ("/api/changes", {"cursor": tok("v1.1.1:1:.5.1:1:.4.4.0")}),        # l1 > l2
        ("/api/changes", {"cursor": "A" * 70000}),
        ("/api/changes", {"limit": "0"}),
        ("/api/changes", {"limit": "5001"}),
        ("/api/changes", {"limit": "-1"}),
        ("/api/changes", {"limit": "1.5"}),
        ("/api/changes", {"limit": "abc"}),
        ("/api/changes", {"limit": ""}),
        ("/api/changes", {"limit": " 5"}),
        ("/api/changes", {"limit": "5 "}),
        ("/api/changes", {"limit": "0x10"}),
        ("/api/changes", {"limit": "1e2"}),
        ("/api/changes", {"limit": "99999999999999999999999999"}),
        ("/api/changes", {"limit": "-9223372036854775808"}),
        ("/api/changes", {"wait": "-1"}),
        ("/api/changes", {"wait": "61"}),
        ("/api/changes", {"wait": "[]"}),
        ("/api/changes", {"wait": "18446744073709551617"}),
        ("/api/changes", {"tables": ""}),
        ("/api/changes", {"tables": ","}),
        ("/api/changes", {"tables": "customer,,customer"}),
        ("/api/changes", {"tables": "nope"}),
        ("/api/changes", {"tables": "customer\x01"}),
        ("/api/changes", {"tables": "x" * 9000}),
        ("/api/changes", {"tables": "tdgl.change_log"}),
        ("/api/changes", {"tables": "canary"}),                            # not tracked
        ("/api/rows", {}),
        ("/api/rows", {"table": ""}),
        ("/api/rows", {"table": "nope"}),
        ("/api/rows", {"table": "canary"}),
        ("/api/rows", {"table": "tdgl.api_keys"}),
        ("/api/rows", {"table": "customer", "after": deep}),
        ("/api/rows", {"table": "customer", "after": "[" * 4000 + "]" * 4000}),
        ("/api/rows", {"table": "customer", "after": deep_obj}),
        ("/api/rows", {"table": "customer", "after": '{"id":1,"id":2}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":1'}),
        ("/api/rows", {"table": "customer", "after": '{"id":1}x'}),
        ("/api/rows", {"table": "customer", "after": "[1]"}),
        ("/api/rows", {"table": "customer", "after": '"x"'}),
        ("/api/rows", {"table": "customer", "after": "1"}),
        ("/api/rows", {"table": "customer", "after": "{}"}),
        ("/api/rows", {"table": "customer", "after": '{"id":null}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":{"a":1}}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":[1]}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":"abc"}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":1e999999}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":99999999999999999999999}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":1.5}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":"\\ud800"}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":"\\u0000"}'}),
        ("/api/rows", {"table": "customer", "after": b'{"id":"\xc3\x28"}'}),
        ("/api/rows", {"table": "customer", "after": b'{"id":"\xed\xa0\x80"}'}),
        ("/api/rows", {"table": "customer", "after": b'{"id":"\xc0\xaf"}'}),
        ("/api/rows", {"table": "customer", "filter": "[]"}),
        ("/api/rows", {"table": "customer", "filter": '{"nope":1}'}),
        ("/api/rows", {"table": "customer", "filter": '{"name":1,"name":2}'}),
        ("/api/rows", {"table": "customer", "filter": '{"id":"x"}'}),
        ("/api/rows", {"table": "customer", "filter": "{" + ",".join(
            f'"c{i}":1' for i in range(40)) + "}"}),
        ("/api/rows", {"table": "customer", "limit": "0"}),
        ("/api/rows", {"table": "customer", "limit": "5001"}),
        ("/api/rows", {"table": "customer", "limit": "x"}),
        ("/api/row", {"table": "customer"}),
        ("/api/row", {"table": "customer", "pk": ""}),
        ("/api/row", {"table": "customer", "pk": "null"}),
        ("/api/row", {"table": "customer", "pk": '{"name":"x"}'}),
        ("/api/row", {"table": "customer", "pk": '{"id":true}'}),
        ("/api/row", {"table": "customer", "pk": deep}),
        ("/api/row", {"table": "customer", "pk": '{"id":1,"id":1}'}),
        ("/api/row", {"table": "nope", "pk": '{"id":1}'}),
    ]


def test_malformed_query_params_get_400_json(site):
    site.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, 10) g")
    failures = []
    for path, params in _bad_params(site):
        q = "&".join(f"{k}={urllib.parse.quote(v, safe='') if isinstance(v, str) else urllib.parse.quote_from_bytes(v, safe='')}"
                     for k, v in params.items())
        status, hdrs, body = raw_request(site.url, "GET", f"{path}?{q}",
                                         auth(site.key, site.secret))
        try:
            j = json.loads(body)
            ok = (status == 400 and hdrs.get("content-type") == "application/json"
                  and isinstance(j.get("error"), str) and j["error"])
        except ValueError:
            ok = False
        if not ok:
            failures.append((path, {k: (v[:60] if isinstance(v, (str, bytes)) else v)
                                    for k, v in params.items()}, status, body[:200]))
    assert not failures, "\n".join(map(repr, failures))
    # a valid request still works and nothing was changed
    assert len(site.get("/api/rows", site.key, site.secret, table="customer").json()["rows"]) == 10
    canary_intact(site)
    healthy(site, site.key, site.secret)


def test_invalid_utf8_and_encoded_nul_in_url_get_400(site):
    for target in ("/api/changes?cursor=%ff", "/api/changes?tables=customer%00x",
                   "/api/rows?table=cust%c3%28omer", "/api/row?table=customer&pk=%7B%22id%22%3A%00%7D",
                   "/api/changes?%ff=1", "/api/changes%ff", "/api/files/a%00.txt",
                   "/api/changes?limit=1%00"):
        status, hdrs, body = raw_request(site.url, "GET", target, auth(site.key, site.secret))
        assert status == 400, (target, status, body)
        assert "error" in json.loads(body)
    healthy(site, site.key, site.secret)


def test_wrong_method_gets_405_json(site):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "XYZ"):
        status, hdrs, body = raw_request(site.url, method, "/api/changes",
                                         auth(site.key, site.secret), body=b"")
        assert status in (400, 405, 501), (method, status)
        if status == 405:
            assert json.loads(body)["error"]
    healthy(site, site.key, site.secret)


# ---- 16: oversized requests ----

def test_oversized_bodies_headers_and_urls_refused_server_healthy(site):
    url = site.url
    a = f"Authorization: token {site.key}:{site.secret}\r\n".encode()
    # a body above the limit, announced honestly: refused before it is read
    out = raw_exchange(url, b"POST /api/changes HTTP/1.1\r\nHost: x\r\n" + a +
                       b"Content-Length: 2097152\r\n\r\n" + b"x" * (2 * 1024 * 1024))
    assert status_of(out) == 413, out[:200]
    big = raw_exchange(url, b"GET /api/changes HTTP/1.1\r\nHost: x\r\n" + a +
                       b"Content-Length: 99999999999\r\n\r\nabc")
    assert status_of(big) == 413, big[:200]
    assert b'"error"' in big
    # Content-Length that is not a number, negative, or given twice with different values
    for cl in (b"abc", b"-1", b"18446744073709551616", b"5\r\nContent-Length: 7"):
        out = raw_exchange(url, b"GET /api/changes HTTP/1.1\r\nHost: x\r\n" + a +
                           b"Content-Length: " + cl + b"\r\nConnection: close\r\n\r\n12345")
        assert status_of(out) in (400, 413), (cl, out[:200])
    # a lying Content-Length (shorter body, then the client goes away): no hang, no leak
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as s:
            s.sendall(b"GET /api/changes HTTP/1.1\r\nHost: x\r\n" + a +
                      b"Content-Length: 60000\r\n\r\n" + b"y" * 100)
    # a longer body than announced: the rest is a next request, refused or dropped
    out = raw_exchange(url, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
                       b"abGARBAGE\r\n\r\n")
    assert status_of(out) == 200 and out.count(b"HTTP/1.1 200") == 1, out[:400]
    out = raw_exchange(url, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
                       b"abGET /api/changes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 1 and b"HTTP/1.1 401" in out, out[:600]
    # oversized header block, single huge header, huge URL, thousands of headers
    for req in (
            b"GET /api/changes HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 300000 + b"\r\n\r\n",
            b"GET /api/changes?cursor=" + b"A" * 300000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /api/changes HTTP/1.1\r\nHost: x\r\n" +
            b"".join(b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n"):
        out = raw_exchange(url, req)
        assert status_of(out) in (400, 413, 414, 431) or out == b"", out[:200]
    # chunked upload that never ends within the limit
    out = raw_exchange(url, b"GET /api/changes HTTP/1.1\r\nHost: x\r\n" + a +
                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                       b"".join(b"8000\r\n" + b"z" * 0x8000 + b"\r\n" for _ in range(4)) +
                       b"0\r\n\r\n")
    assert status_of(out) == 413, out[:200]
    healthy(site, site.key, site.secret)
    assert site.server.proc.poll() is None


# ---- 17: slow clients ----

def test_slow_clients_hold_no_one_up_and_pulls_still_served(site):
    """Slowloris (headers a byte at a time) and slow POST (body a byte at a time) on many
    connections; meanwhile normal pulls answer promptly and the server stays healthy."""
    host, port = "127.0.0.1", site.server.port
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    socks = []
    stop = threading.Event()

    def trickle():
        i = 0
        while not stop.is_set():
            for s in list(socks):
                try:
                    s.send(b"X-a: b\r\n"[i % 8:i % 8 + 1])
                except OSError:
                    socks.remove(s)
            i += 1
            stop.wait(1.0)

    for n in range(150):
        s = socket.create_connection((host, port), timeout=5)
        if n % 3 == 0:   # slow POST: honest small Content-Length, body never completes
            s.sendall(b"POST /api/changes HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        else:
            s.sendall(b"GET /api/changes HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        # slow readers: ask for a page and never read the answer
        for _ in range(20):
            s = socket.create_connection((host, port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(f"GET /api/changes?limit=500 HTTP/1.1\r\nHost: x\r\nAuthorization: token "
                      f"{site.key}:{site.secret}\r\n\r\n".encode())
            socks.append(s)
        for _ in range(10):
            t0 = time.monotonic()
            j = healthy(site, site.key, site.secret)
            assert [c["pk"] for c in j["changes"]] == [{"id": 1}]
            assert time.monotonic() - t0 < 2.0, "a normal pull waited behind slow clients"
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()
    healthy(site, site.key, site.secret)


def _closed(s):
    """True once the server has closed (or reset) the connection."""
    try:
        s.setblocking(False)
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_clients_are_cut_at_the_request_deadline(primary):
    """Every request must arrive whole within the deadline (TDGL_HTTP_TIMEOUT, shortened
    here): a trickle of header or body bytes does not keep a connection open forever, while
    a long-poll that outlives the deadline is not cut (handlers run without one)."""
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)")
    primary.track("customer")
    primary.serve(env={"TDGL_HTTP_TIMEOUT": "2"})
    key, secret = primary.keygen()
    port = primary.server.port
    kinds = [b"GET /api/changes HTTP/1.1\r\nHost: x\r\n",                      # slowloris
             b"POST /api/changes HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",  # slow POST
             b""]                                                                 # idle
    socks = []
    for k in kinds * 3:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if k:
            s.sendall(k)
        socks.append((k, s))
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.3):
            for k, s in socks:
                if k:
                    try:
                        s.send(b"X" if k.startswith(b"POST") else b"X-a: b\r\n"[:1])
                    except OSError:
                        pass
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    got = {}

    def longpoll():
        got["r"] = requests.get(primary.url + "/api/changes", params={"wait": 4},
                                headers=auth(key, secret), timeout=30)
    lp = threading.Thread(target=longpoll)
    t0 = time.monotonic()
    lp.start()
    try:
        wait_until(lambda: all(_closed(s) for _, s in socks), timeout=15, interval=0.1,
                   what="slow connections cut at the deadline")
        cut_after = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        for _, s in socks:
            s.close()
    lp.join(30)
    assert got["r"].status_code == 200 and got["r"].json()["changes"] == []
    assert cut_after < 12, cut_after
    healthy(primary, key, secret)


# ---- 18: SQL injection ----

EVIL_TABLE = 'x"; DROP TABLE canary; --'


def test_sql_injection_through_names_keys_and_filters_refused_or_quoted(site):
    # a table whose name is an injection, with a column that is one too: tracked and served
    site.sql(f'CREATE TABLE "{EVIL_TABLE.replace(chr(34), chr(34) * 2)}"'
             ' (id text PRIMARY KEY, "v""); DROP TABLE canary; --" text)')
    # the CLI takes SQL name syntax: unquoted, the name is refused; quoted, it is tracked
    r = site.cli("track", EVIL_TABLE, check=False)
    assert r.returncode != 0
    canary_intact(site)
    site.track('"' + EVIL_TABLE.replace('"', '""') + '"')
    site.sql(f'INSERT INTO "{EVIL_TABLE.replace(chr(34), chr(34) * 2)}" VALUES '
             "('k''); DROP TABLE canary; --', 'v''x')")
    canary_intact(site)
    r = site.get("/api/changes", site.key, site.secret, tables=EVIL_TABLE)
    assert r.status_code == 200, r.text
    ch = r.json()["changes"]
    assert [(c["table"], c["pk"]) for c in ch] == [
        (EVIL_TABLE, {"id": "k'); DROP TABLE canary; --"})]
    assert ch[0]["row"]['v"); DROP TABLE canary; --'] == "v'x"
    r = site.get("/api/rows", site.key, site.secret, table=EVIL_TABLE,
                 filter=json.dumps({'v"); DROP TABLE canary; --': "v'x"}))
    assert r.status_code == 200 and len(r.json()["rows"]) == 1, r.text
    r = site.get("/api/row", site.key, site.secret, table=EVIL_TABLE,
                 pk=json.dumps({"id": "k'); DROP TABLE canary; --"}))
    assert r.status_code == 200, r.text
    r = site.get("/api/rows", site.key, site.secret, table=EVIL_TABLE,
                 after=json.dumps({"id": "a' OR '1'='1"}))
    assert r.status_code == 200 and len(r.json()["rows"]) == 1
    # names, lists, keys and filters that try to break out: refused (4xx) or harmless
    attempts = [
        ("/api/changes", {"tables": "customer'; DROP TABLE canary; --"}),
        ("/api/changes", {"tables": 'customer"; DROP TABLE canary; --'}),
        ("/api/changes", {"tables": "customer\u02bc; DROP TABLE canary; --"}),
        ("/api/changes", {"tables": "customer\uff07; DROP TABLE canary; --"}),
        ("/api/changes", {"tables": 'customer","canary'}),
        ("/api/changes", {"tables": "customer},{canary"}),
        ("/api/changes", {"tables": "customer\\,canary"}),
        ("/api/changes", {"tables": "public.canary"}),
        ("/api/changes", {"tables": "customer) OR true --"}),
        ("/api/rows", {"table": "canary"}),
        ("/api/rows", {"table": "customer; DROP TABLE canary"}),
        ("/api/rows", {"table": 'public"."canary'}),
        ("/api/rows", {"table": "customer\u02bc"}),
        ("/api/rows", {"table": "customer", "filter": '{"name\\"; DROP TABLE canary; --":1}'}),
        ("/api/rows", {"table": "customer", "filter": '{"name":"\' OR 1=1 --"}'}),
        ("/api/rows", {"table": "customer", "filter": '{"1=1) OR (true":1}'}),
        ("/api/rows", {"table": "customer", "after": '{"id":"1); DROP TABLE canary; --"}'}),
        ("/api/row", {"table": "customer", "pk": '{"id":"1 OR 1=1"}'}),
        ("/api/row", {"table": "customer", "pk": '{"id":"1\'); DROP TABLE canary; --"}'}),
    ]
    site.sql("INSERT INTO customer VALUES (1, 'real', 0)")
    for path, params in attempts:
        r = site.get(path, site.key, site.secret, **params)
        if r.status_code == 200:
            j = r.json()
            if path == "/api/rows":
                # a filter that is a value matches nothing
                assert j["rows"] == [], (params, r.text)
            elif path == "/api/changes":
                raise AssertionError(f"{params} accepted: {r.text}")
        else:
            assert_json_error(r, {400, 404})
        canary_intact(site)
    assert site.one("SELECT count(*) FROM customer") == 1
    healthy(site, site.key, site.secret)


def test_cli_table_names_cannot_inject(site):
    for name in ("customer; DROP TABLE canary", 'canary" CASCADE; --', "tdgl.api_keys",
                 "pg_catalog.pg_class", "customer\u02bc", "nope"):
        r = site.cli("track", name, check=False)
        assert r.returncode != 0, name
        assert "Traceback" not in r.stderr
        canary_intact(site)
    r = site.cli("untrack", "canary'; DROP TABLE canary; --", check=False)
    assert r.returncode != 0
    canary_intact(site)


# ---- 19: path traversal ----

@pytest.fixture
def files_site(primary, tmp_path):
    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("inside")
    (root / "sub" / "b.txt").write_text("inside b")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-OUTSIDE")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink("../secret.txt", root / "rel-link.txt")
    os.symlink(tmp_path, root / "dirlink")
    os.symlink("/etc", root / "etc")
    os.chmod(tmp_path, 0o755)
    primary.serve("--files-dir", str(root))
    primary.key, primary.secret = primary.keygen()
    primary.files_root = root
    return primary


def test_file_path_traversal_refused_nothing_read_outside(files_site):
    s = files_site
    h = auth(s.key, s.secret)
    status, _, body = raw_request(s.url, "GET", "/api/files/a.txt", h)
    assert (status, body) == (200, b"inside")
    status, _, body = raw_request(s.url, "GET", "/api/files/sub/b.txt", h)
    assert (status, body) == (200, b"inside b")
    attacks = [
        "/api/files/../secret.txt", "/api/files/sub/../../secret.txt",
        "/api/files/%2e%2e/secret.txt", "/api/files/%2e%2e%2fsecret.txt",
        "/api/files/sub%2f..%2f..%2fsecret.txt", "/api/files/%252e%252e%252fsecret.txt",
        "/api/files/..%5csecret.txt", "/api/files/sub\\..\\..\\secret.txt",
        "/api/files//etc/passwd", "/api/files/%2fetc%2fpasswd", "/api/files/etc/passwd",
        "/api/files/link.txt", "/api/files/rel-link.txt", "/api/files/dirlink/secret.txt",
        "/api/files/a.txt%00.png", "/api/files/%00", "/api/files/", "/api/files/.",
        "/api/files/sub/", "/api/files/sub", "/api/files/./a.txt", "/api/files/..",
        "/api/files/%c0%ae%c0%ae/secret.txt", "/api/files/..%c0%afsecret.txt",
        "/api/files/" + "a/" * 600 + "x", "/api/files/sub/%2e%2e/%2e%2e/secret.txt",
        "/api/files/..;/secret.txt", "/api/files/%2E%2E/secret.txt",
    ]
    leaks, wrong = [], []
    for target in attacks:
        status, hdrs, body = raw_request(s.url, "GET", target, h)
        if b"TOP-SECRET" in body or b"root:" in body:
            leaks.append(target)
        if not 400 <= status < 500:
            wrong.append((target, status))
        elif hdrs.get("content-type") != "application/json" or "error" not in json.loads(body):
            wrong.append((target, status, body[:80]))
    assert not leaks, leaks
    assert not wrong, wrong
    # the raw request line too, where no client would normalise the path
    for line in (b"GET /api/files/../../secret.txt HTTP/1.1", b"GET /api/files/../../../etc/passwd HTTP/1.0",
                 b"GET http://x/api/files/../secret.txt HTTP/1.1"):
        out = raw_exchange(s.url, line + b"\r\nHost: x\r\nAuthorization: token " +
                           f"{s.key}:{s.secret}".encode() + b"\r\nConnection: close\r\n\r\n")
        assert b"TOP-SECRET" not in out and b"root:" not in out
        assert 400 <= status_of(out) < 500, out[:200]
    # unauthenticated file requests never reach the filesystem
    status, _, body = raw_request(s.url, "GET", "/api/files/a.txt")
    assert status == 401
    healthy(s, s.key, s.secret)


# ---- 25: secrets ----

def test_secrets_never_in_logs_error_bodies_or_metrics(primary):
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)")
    primary.track("customer")
    push_secret = "push-secret-SHOULD-NOT-LEAK-0123456789"
    r = primary.cli("push", "add", "http://127.0.0.1:9/hook", env={"TDGL_PUSH_SECRET": push_secret})
    assert push_secret not in r.stdout + r.stderr
    primary.serve("--purge-interval", "1s", env={"TDGL_LOG_FORMAT": "text"})
    key, secret = primary.keygen()
    other_key, other_secret = primary.keygen("other")
    primary.sql("INSERT INTO customer VALUES (1, 'x')")
    bodies = []
    # failing and succeeding auth with the secrets in every place a client could put them
    for hdr in (f"token {key}:{secret}", f"token {key}:{secret}x", f"token {other_key}:{secret}",
                f"token {secret}:{secret}", f"Bearer {secret}", f"token {key}:{push_secret}"):
        for path in ("/api/changes?cursor=bad", "/api/rows?table=nope", "/api/snapshot",
                     "/api/row?table=customer&pk=%7B%22id%22%3A%22x%22%7D",
                     "/api/files/x", "/api/nope", "/metrics", "/api/changes?tables=nope"):
            status, _, body = raw_request(primary.url, "GET", path, {"Authorization": hdr})
            if status != 200:
                bodies.append(body)
    status, _, metrics = raw_request(primary.url, "GET", "/metrics", auth(key, secret))
    assert status == 200
    out = primary.cli("keys").stdout + primary.cli("push", "list").stdout + \
        primary.cli("tables").stdout
    stored = primary.sql("SELECT secret_hash FROM tdgl.api_keys")
    # let the push notifier try (and fail) against the dead target, and a purge run
    wait_until(lambda: b"tdgl_push_failed_total 0" not in
               raw_request(primary.url, "GET", "/metrics", auth(key, secret))[2], timeout=15,
               what="a failed push")
    primary.server.stop()
    log = primary.server.log()
    for s in (secret, other_secret, push_secret):
        assert s not in log, "secret in server log"
        assert all(s.encode() not in b for b in bodies), "secret echoed in an error body"
        assert s.encode() not in metrics
        assert s not in out
        assert all(s not in h for (h,) in stored)
    # error bodies name the problem without echoing attacker-controlled input verbatim at length
    assert all(len(b) < 600 for b in bodies)

"""Hostile load on both servers: slow clients and floods from one address, one API key
holding every long-poll, malformed requests by the thousand. Each server must keep serving
the others (replication, /health, the admin API), refuse what is over a limit with a clear
answer, and keep its log from growing with what a client sends."""
import os
import socket
import threading

import requests

from harness import wait_until
from test_replica import CUSTOMER, pair
from test_replica_serve import PUSH, source_ready

FLOOD = "127.0.0.2"      # the attacker's address (every 127/8 address is this machine)


def slow_clients(port, n, source=FLOOD):
    """n connections from `source` that send half a request and then nothing."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=(source, 0))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            break          # refused: the flood is over its address's share
    return socks


def still_open(socks):
    """How many of socks the server has not closed."""
    n = 0
    for s in socks:
        s.settimeout(0)
        try:
            n += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            n += 1          # nothing to read and not closed: held by the server
        except OSError:
            pass            # reset
    return n


def close_all(socks):
    for s in socks:
        s.close()


def test_a_slow_client_flood_leaves_replication_health_and_push_working(primary, replica):
    primary.serve("--max-conns", "40")                # 10 per address
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve("--max-conns", "40")
    primary.cli("push", "add", replica.url, env={"TDGL_PUSH_SECRET": PUSH})
    source_ready(replica)
    flood = slow_clients(primary.server.port, 60) + slow_clients(replica.server.port, 60)
    try:
        # the servers close what is over the address's share (10 each)
        wait_until(lambda: still_open(flood) <= 2 * 10, what="over-limit connections closed")
        for url in (primary.url, replica.url):
            assert requests.get(url + "/health", timeout=5).status_code == 200
        assert replica.api("GET", "/api/status").status_code == 200
        # a change travels: push from the primary, a pull by the replica
        primary.sql("INSERT INTO customer VALUES (1, 'during the flood', 'X', 1)")
        replica.wait_rows("SELECT name FROM customer", [("during the flood",)], timeout=20)
    finally:
        close_all(flood)
    metrics = replica.api("GET", "/metrics").text
    assert "tdgl_replica_http_protocol_errors_total" in metrics


def test_one_key_cannot_hold_every_long_poll(primary):
    primary.sql(CUSTOMER)
    primary.track("customer")
    primary.serve("--max-waits-per-key", "2")
    key, secret = primary.keygen("greedy")
    other = primary.keygen("other")
    held, done = [], threading.Event()

    def long_poll():
        held.append(primary.get("/api/changes", key, secret, wait=20).status_code)

    threads = [threading.Thread(target=long_poll) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: "tdgl_longpoll_waiters 2" in
                   primary.get("/metrics", key, secret).text, what="two long-polls waiting")
        r = primary.get("/api/changes", key, secret, wait=20)
        assert r.status_code == 429 and r.headers.get("Retry-After") == "1", r.text
        assert "long-polls" in r.json()["error"]
        # another key and /health are served as usual
        assert primary.get("/api/changes", *other, wait=1).status_code == 200
        assert requests.get(primary.url + "/health", timeout=5).status_code == 200
    finally:
        done.set()
        primary.sql("INSERT INTO customer VALUES (1, 'wake', 'X', 1)")   # ends the waits
        for t in threads:
            t.join(30)
    assert held == [200, 200]


def test_ten_thousand_bad_requests_do_not_fill_the_log(primary, replica):
    primary.serve()
    replica.serve()
    for site, metric in ((primary, "tdgl_http_protocol_errors_total"),
                         (replica, "tdgl_replica_http_protocol_errors_total")):
        before = os.path.getsize(site.server.logfile)
        for _ in range(10000):        # HTTP/1.1 without Host: refused, and libmicrohttpd logs it
            with socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\n\r\n")
                assert s.recv(64).startswith(b"HTTP/1.1 400")
        grown = os.path.getsize(site.server.logfile) - before
        assert grown < 2000, f"{site.binary} log grew {grown} bytes"
        if site is primary:
            text = requests.get(primary.url + "/metrics", timeout=5, headers={
                "Authorization": "token %s:%s" % primary.keygen("metrics")}).text
        else:
            text = replica.api("GET", "/metrics").text
        count = [ln for ln in text.splitlines() if ln.startswith(metric + " ")]
        assert count and int(count[0].split()[1]) >= 10000, count


def test_client_errors_use_our_words_not_the_databases(primary):
    primary.sql(CUSTOMER)
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen()
    r = primary.get("/api/rows", key, secret, table="customer", filter='{"a\\"b": 1}')
    assert r.status_code == 400 and r.json() == {"error": "filter: bad column name"}, r.text
    r = primary.get("/api/rows", key, secret, table="customer", filter='{"id": "x"}')
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "bad value: a key or filter value does not fit its column"}


def test_push_secrets_are_sealed_at_rest_and_still_sign(primary, replica):
    """A local account that reads tdgl.push_targets learns no push secret: stored sealed
    under TDGL_SECRET_KEY (plain ones from before are sealed when serve starts with it)."""
    key = {"TDGL_SECRET_KEY": "primary-sealing-key-0123456789abcdef"}
    primary.sql("INSERT INTO tdgl.push_targets (url, secret) "
                "VALUES ('http://127.0.0.1:9/old', 'an-old-plain-push-secret')")
    primary.serve(env=key)
    assert "sealed 1 secret" in primary.server.log()
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve()
    source_ready(replica)
    primary.cli("push", "add", replica.url, env=dict(key, TDGL_PUSH_SECRET=PUSH))
    for (secret,) in primary.sql("SELECT secret FROM tdgl.push_targets"):
        assert secret.startswith("v1:") and "push" not in secret, secret
    # the sealed secret still signs: the change is pushed (the schedule would wait an hour)
    wait_until(lambda: f"{replica.url}/api/notify active" in primary.server.log(),
               what="the push target opened with the key")
    primary.sql("INSERT INTO customer VALUES (1, 'pushed', 'X', 1)")
    replica.wait_rows("SELECT name FROM customer", [("pushed",)], timeout=20)

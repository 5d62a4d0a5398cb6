"""Faults on the primary side (issue 7): rolled-back id gaps, a long open transaction across
purges, PostgreSQL or the primary killed in the middle of a page, and a connection stalled or
cut by the fault proxy (tests/faultproxy.c).

Already covered elsewhere, not repeated here: commits out of id order (scenario 1,
test_primary.py::test_commit_out_of_id_order_is_not_lost), a long transaction's changes
arriving after commit (test_primary.py::test_long_transaction_loses_nothing) and many changes
of one transaction across page boundaries for limits 1..500 (scenario 4,
test_primary.py::test_many_changes_in_one_transaction_cross_pages).

FaultProxy here is shared by test_fault_replica.py."""
import os
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from harness import TDGL_BIN, wait_until
from sites import PrimarySite
from test_attack_primary import healthy  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- the fault proxy ----

def faultproxy_binary():
    """bin/faultproxy (built by `make`); compiled on demand when missing."""
    path = os.path.join(TDGL_BIN, "faultproxy")
    if os.path.exists(path):
        return path
    out = os.path.join(tempfile.mkdtemp(prefix="tdgl-fp-"), "faultproxy")
    subprocess.run(["cc", "-O2", "-pthread", "-o", out, os.path.join(HERE, "faultproxy.c")],
                   check=True)
    return out


class FaultProxy:
    """127.0.0.1:port -> 127.0.0.1:target, misbehaving on command (see tests/faultproxy.c)."""

    def __init__(self, target_port):
        self.proc = subprocess.Popen([faultproxy_binary(), "0", str(target_port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        ready = self.proc.stdout.readline().split()
        assert ready and ready[0] == "ready", ready
        self.port = int(ready[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def cmd(self, line):
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        assert not answer.startswith("error"), answer
        return answer

    def stats(self):
        f = self.cmd("stats").split()
        return dict(zip(f[0::2], map(int, f[1::2])))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def proxy_factory():
    made = []

    def make(target_port):
        made.append(FaultProxy(target_port))
        return made[-1]
    yield make
    for p in made:
        p.close()


# ---- helpers ----

@pytest.fixture
def site(primary):
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)")
    primary.track("customer")
    primary.serve()
    primary.key, primary.secret = primary.keygen()
    return primary


def fetch(site, cursor=None, url=None, timeout=30, **params):
    if cursor:
        params["cursor"] = cursor
    r = requests.get((url or site.url) + "/api/changes", params=params, timeout=timeout,
                     headers={"Authorization": f"token {site.key}:{site.secret}"})
    assert r.status_code == 200, r.text
    j = r.json()
    return j["changes"], j["cursor"], j["more"]


def drain(site, cursor=None, limit=100, **params):
    out = []
    while True:
        ch, cursor, more = fetch(site, cursor, limit=limit, **params)
        out += ch
        if not more:
            return out, cursor


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


# ---- 2: rolled-back id gaps ----

def test_rolled_back_id_gap_is_never_waited_on(site):
    site.sql("INSERT INTO customer VALUES (1, 'before')")
    _, cursor = drain(site)
    rb = site.cluster.connect(site.dbname, autocommit=False)
    try:
        rb.cursor().execute("INSERT INTO customer SELECT g, 'gone' FROM generate_series(10, 60) g")
        site.sql("INSERT INTO customer VALUES (2, 'during')")     # id after the open gap
        rb.rollback()
    finally:
        rb.close()
    site.sql("INSERT INTO customer VALUES (3, 'after')")
    t0 = time.monotonic()
    ch, cursor, more = fetch(site, cursor, wait=10, limit=1)
    assert [c["pk"] for c in ch] == [{"id": 2}]
    ch2, cursor = drain(site, cursor, limit=1)
    assert [c["pk"] for c in ch2] == [{"id": 3}]
    # a long-poll past the gap returns as soon as something commits, not at its deadline
    threading.Timer(0.3, lambda: site.sql("INSERT INTO customer VALUES (4, 'later')")).start()
    ch3, cursor, _ = fetch(site, cursor, wait=20)
    assert [c["pk"] for c in ch3] == [{"id": 4}]
    assert time.monotonic() - t0 < 8, "a rolled-back gap was waited on"
    assert drain(site, cursor)[0] == []


# ---- 3: a long open transaction and purge ----

def test_long_open_transaction_survives_purge(site):
    """A transaction open across purges: its changes carry an old changed_at (transaction
    start) when they commit, yet no purge may drop them before the key has read them."""
    site.sql("INSERT INTO customer VALUES (1, 'first')")
    _, cursor = drain(site)
    long_tx = site.cluster.connect(site.dbname, autocommit=False)
    try:
        long_tx.cursor().execute("INSERT INTO customer VALUES (1000, 'long')")
        long_tx.cursor().execute("UPDATE customer SET name = 'long' WHERE id = 1")
        for i in range(2, 12):
            site.sql("INSERT INTO customer VALUES (%s, 'meanwhile')", (i,))
        served, cursor = drain(site, cursor, limit=3)
        assert sorted(c["pk"]["id"] for c in served) == list(range(2, 12))
        # everything looks old; the purge runs while the transaction is still open
        site.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '2 hours'")
        site.cli("purge", "--retention", "1h")
        long_tx.commit()
    finally:
        long_tx.close()
    # committed with changed_at of its start: old too; another purge before the key reads
    site.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '2 hours'")
    site.cli("purge", "--retention", "1h")
    ch, cursor = drain(site, cursor, limit=1)
    assert sorted((c["pk"]["id"], c["row"]["name"]) for c in ch) == [(1, "long"), (1000, "long")]
    # once the key has moved on (its position is recorded every few seconds), purge drops them
    def purged():
        drain(site, cursor)
        site.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '2 hours'")
        site.cli("purge", "--retention", "1h")
        return site.one("SELECT count(*) FROM tdgl.change_log") == 0
    wait_until(purged, timeout=20, interval=0.5, what="purge after the key moved on")


# ---- 7: PostgreSQL or the primary killed in the middle of a page ----

def _check_page(r, limit):
    """A 200 is a whole page, or the request must fail: never a partial 200."""
    if r.status_code != 200:
        assert r.status_code in (500, 502, 503, 410) and "error" in r.json(), r.text[:300]
        return None
    j = r.json()
    assert len(j["changes"]) == limit and j["more"] is True, (len(j["changes"]), j["more"])
    ids = [c["id"] for c in j["changes"]]
    assert ids == sorted(ids) and len(set(ids)) == limit
    return ids


def test_postgres_killed_mid_page_gives_an_error_never_a_partial_page(own_cluster, servers,
                                                                       logdir):
    cluster = own_cluster("pgkill")
    p = PrimarySite(cluster, cluster.new_db("p"), servers, logdir)
    try:
        p.migrate()
        p.sql("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        p.track("big")
        p.sql("INSERT INTO big SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 1500) g")
        p.serve()
        p.key, p.secret = p.keygen()
        h = {"Authorization": f"token {p.key}:{p.secret}"}
        first = requests.get(p.url + "/api/changes", params={"limit": 500}, headers=h, timeout=30)
        want = _check_page(first, 500)
        stop = threading.Event()
        seen = {"ok": 0, "err": 0, "exc": 0}
        problems = []

        def hammer():
            while not stop.is_set():
                try:
                    r = requests.get(p.url + "/api/changes", params={"limit": 500}, headers=h,
                                     timeout=30)
                    ids = _check_page(r, 500)
                    if ids is None:
                        seen["err"] += 1
                    else:
                        assert ids == want, "replayed page differs"
                        seen["ok"] += 1
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    seen["exc"] += 1
                except Exception as e:  # noqa: BLE001 - reported below
                    problems.append(repr(e))
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: seen["ok"] >= 2, timeout=30, what="pages before the kill")
        p.conn.close()
        cluster.kill()
        wait_until(lambda: seen["err"] + seen["exc"] >= 3, timeout=30, what="errors while down")
        cluster.start()
        p.conn = cluster.connect(p.dbname)
        ok_before = seen["ok"]
        wait_until(lambda: seen["ok"] >= ok_before + 3, timeout=30, what="pages after recovery")
        stop.set()
        for t in threads:
            t.join(60)
        assert not problems, problems[:5]
        assert p.server.proc.poll() is None
    finally:
        p.close()


def test_primary_killed_mid_response_never_yields_a_partial_page(primary):
    primary.sql("CREATE TABLE big (id int PRIMARY KEY, pad text)")
    primary.track("big")
    primary.sql("INSERT INTO big SELECT g, repeat(md5(g::text), 300) FROM generate_series(1, 500) g")
    primary.serve()
    primary.key, primary.secret = primary.keygen()
    h = {"Authorization": f"token {primary.key}:{primary.secret}"}
    outcomes = []
    for attempt in range(5):
        proxy = FaultProxy(primary.server.port)
        try:
            # the proxy lets a part of the page through, then the primary dies
            proxy.cmd(f"stall-after {20000 + attempt * 150000}")
            res = {}

            def get():
                try:
                    r = requests.get(proxy.url + "/api/changes", params={"limit": 500},
                                     headers=h, timeout=(5, 30))
                    res["r"] = r
                    res["page"] = r.json()
                except Exception as e:  # noqa: BLE001 - classified below
                    res["e"] = e
            t = threading.Thread(target=get)
            t.start()
            wait_until(lambda: proxy.stats()["down"] > 0, timeout=10, what="bytes down")
            primary.server.kill()
            proxy.cmd("pass")
            t.join(40)
            assert not t.is_alive()
            if "e" in res:
                outcomes.append("error")
            else:
                # only a complete page may parse
                assert len(res["page"]["changes"]) == 500
                outcomes.append("whole")
        finally:
            proxy.close()
            primary.server.start()
    assert "error" in outcomes, outcomes


# ---- 9: stalled and cut connections ----

def test_stalled_or_cut_response_times_out_and_server_stays_healthy(site, proxy_factory):
    site.sql("INSERT INTO customer SELECT g, repeat('x', 2000) FROM generate_series(1, 300) g")
    proxy = proxy_factory(site.server.port)
    h = {"Authorization": f"token {site.key}:{site.secret}"}
    url = proxy.url + "/api/changes"
    base_threads = thread_count(site.server.proc.pid)
    full = requests.get(url, params={"limit": 300}, headers=h, timeout=10)
    assert full.status_code == 200 and len(full.json()["changes"]) == 300

    # stall: nothing comes back; the client's timeout fires
    proxy.cmd("stall")
    for _ in range(5):
        with pytest.raises(requests.Timeout):
            requests.get(url, params={"limit": 300}, headers=h, timeout=(2, 0.5))
    healthy(site, site.key, site.secret)               # direct access unaffected

    # stalled mid-response: headers and part of the body, then nothing
    proxy.cmd("stall-after 3000")
    with pytest.raises((requests.Timeout, requests.ConnectionError)):
        r = requests.get(url, params={"limit": 300}, headers=h, timeout=(2, 0.5))
        r.json()

    # cut (RST) and truncated (FIN) mid-response: an error, never a parsed partial page
    for mode in ("cut-after 5000", "truncate-response 5000", "cut-after 100",
                 "truncate-response 0"):
        proxy.cmd(mode)
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                            ValueError)):
            r = requests.get(url, params={"limit": 300}, headers=h, timeout=(2, 5))
            r.json()

    # slow but whole
    proxy.cmd("delay 20")
    r = requests.get(url, params={"limit": 300}, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["changes"] == full.json()["changes"]

    # back to normal; dropping the stalled connections frees every server thread
    proxy.cmd("drop")
    proxy.cmd("pass")
    r = requests.get(url, params={"limit": 300}, headers=h, timeout=10)
    assert r.json()["changes"] == full.json()["changes"]
    proxy.cmd("drop")
    wait_until(lambda: thread_count(site.server.proc.pid) <= base_threads + 1, timeout=20,
               what="server threads back to the baseline (no hung thread)")
    healthy(site, site.key, site.secret)

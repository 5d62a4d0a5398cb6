"""Replica server: scheduler, push, long-poll, backoff, crash safety, admin API."""
import base64
import hashlib
import hmac
import json
import os
import tempfile
import time

import requests

from harness import free_port, wait_until
from sites import ADMIN_TOKEN
from test_replica import CUSTOMER, pair, pull, rows_md5  # noqa: F401 - also patches harness

PUSH = "push-secret-for-tests-0123456789"


def source_ready(replica, name="main"):
    """Waits for the source's initial sync to finish."""
    wait_until(lambda: replica.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources WHERE name = %s",
                                   (name,)), timeout=20, what=f"initial sync of {name}")


def signed(body, secret=PUSH, ts=None):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), (ts + "." + body).encode(), hashlib.sha256).hexdigest()
    return {"X-TDGL-Timestamp": ts, "X-TDGL-Signature": "sha256=" + mac,
            "Content-Type": "application/json"}


def test_admin_api_needs_the_token(replica):
    replica.serve()
    assert requests.get(replica.url + "/health", timeout=5).json() == {"status": "ok"}
    for path in ["/api/status", "/api/sources", "/api/conflicts", "/api/log", "/api/runs",
                 "/metrics"]:
        r = requests.get(replica.url + path, timeout=5)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}, path
        r = requests.get(replica.url + path, timeout=5,
                         headers={"Authorization": "Bearer " + ADMIN_TOKEN + "x"})
        assert r.status_code == 401, path
        assert replica.api("GET", path).status_code == 200, path
    r = requests.post(replica.url + "/api/sources/x/pull", timeout=5)
    assert r.status_code == 401


def test_admin_api_rejects_bad_input(replica):
    replica.serve()
    assert replica.api("POST", "/api/sources", data="{nope").status_code == 400
    assert replica.api("POST", "/api/sources", json={"name": "a"}).status_code == 400
    assert replica.api("POST", "/api/sources", json=[1]).status_code == 400
    assert replica.api("POST", "/api/sources/nope/pull").status_code == 404
    assert replica.api("POST", "/api/conflicts/abc/resolve", json={}).status_code == 400
    assert replica.api("POST", "/api/conflicts/99/resolve",
                       json={"resolution": "Keep Local"}).status_code == 404
    assert replica.api("POST", "/api/conflicts/99/resolve",
                       json={"resolution": "Maybe"}).status_code == 400
    assert replica.api("GET", "/api/log?status=Nope").status_code == 400
    assert replica.api("GET", "/api/runs?limit=-1").status_code == 400
    assert replica.api("GET", "/api/nothing").status_code == 404
    r = replica.api("POST", "/api/notify", data="{}")
    assert r.status_code == 401 and "error" in r.json()


def test_serve_refuses_without_admin_token_or_secret_key(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    p = replica.cli("serve", "--listen", f"127.0.0.1:{free_port()}", check=False,
                    env={"TDGL_ADMIN_TOKEN": ""})
    assert p.returncode == 1 and "TDGL_ADMIN_TOKEN" in p.stderr
    p = replica.cli("serve", "--listen", f"127.0.0.1:{free_port()}", check=False,
                    env={"TDGL_SECRET_KEY": ""})
    assert p.returncode == 1 and "TDGL_SECRET_KEY" in p.stderr


def test_source_added_over_the_api_starts_its_initial_sync(primary, replica):
    primary.sql(CUSTOMER)
    replica.sql(CUSTOMER)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen()
    replica.serve()
    r = replica.api("POST", "/api/sources", json={
        "name": "api", "url": primary.url, "key": key, "secret": secret,
        "tables": "customer", "poll_interval": 3600})
    assert r.status_code == 201, r.text
    replica.wait_rows("SELECT id FROM customer", [(1,)])
    assert replica.api("POST", "/api/sources", json={
        "name": "api", "url": primary.url, "key": key, "secret": secret,
        "tables": "customer"}).status_code == 409
    sources = replica.api("GET", "/api/sources").json()
    assert [s["name"] for s in sources] == ["api"]
    assert secret not in json.dumps(sources)
    primary.sql("INSERT INTO customer VALUES (2, 'b', 'X', 1)")
    r = replica.api("POST", "/api/sources/api/pull?wait=1")
    assert r.status_code == 200 and r.json()["status"] == "Success", r.text
    assert replica.sql("SELECT id FROM customer ORDER BY id") == [(1,), (2,)]
    runs = replica.api("GET", "/api/runs").json()
    assert runs[0]["trigger"] == "API"
    # applied exactly once: by this pull, or by one still running when it was asked for
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE pk = '{\"id\": 2}' "
                       "AND status = 'Synced'") == 1


def test_source_added_by_the_cli_while_serving_is_picked_up(primary, replica):
    replica.serve()
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    replica.wait_rows("SELECT id FROM customer", [(1,)], timeout=20)


def test_conflicts_over_the_api_and_resolve_twice_is_409(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 1")
    primary.sql("UPDATE customer SET name = 'primary' WHERE id = 1")
    pull(replica)
    replica.serve()
    open_ = replica.api("GET", "/api/conflicts?status=open").json()
    assert len(open_) == 1 and open_[0]["local_row"]["name"] == "local"
    cid = open_[0]["id"]
    r = replica.api("POST", f"/api/conflicts/{cid}/resolve", json={"resolution": "Accept Primary"})
    assert r.status_code == 200 and r.json()["status"] == "Resolved"
    assert replica.one("SELECT name FROM customer WHERE id = 1") == "primary"
    r = replica.api("POST", f"/api/conflicts/{cid}/resolve", json={"resolution": "Keep Local"})
    assert r.status_code == 409 and "already resolved" in r.json()["error"]
    assert replica.api("GET", "/api/conflicts?status=open").json() == []
    log = replica.api("GET", "/api/log?status=Skipped").json()
    assert any(e["reason"].startswith("conflict") for e in log)


def best_delivery_seconds(primary, replica, samples=5):
    """Commits single rows on the primary and returns the fastest commit-to-replica time.
    Every sample must arrive (the poll interval is an hour, so only a push or a long-poll can
    bring it); the best one shows the wake-up path's latency without the noise a loaded
    machine adds to any single sample."""
    best = None
    for i in range(1, samples + 1):
        t0 = time.monotonic()
        primary.sql("INSERT INTO customer VALUES (%s, 'a', 'X', 1)", (i,))
        wait_until(lambda: replica.one("SELECT count(*) FROM customer WHERE id = %s", (i,)),
                   timeout=10, interval=0.005, what=f"row {i} on the replica")
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    return best


def test_push_wakes_a_pull_within_1s(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve()
    source_ready(replica)
    primary.cli("push", "add", replica.url, "--secret", PUSH)
    # the primary picks push targets up by itself; latency is measured once it has
    wait_until(lambda: "/api/notify active" in primary.server.log(), timeout=20,
               what="the primary to activate the push target")
    assert best_delivery_seconds(primary, replica) < 1.0
    assert replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE trigger = 'Webhook'") >= 1


def test_webhook_pull_skips_the_health_probe(replica):
    from test_attack_replica import FakePrimary   # imports this module: not at the top
    fake = FakePrimary()
    try:
        replica.sql(CUSTOMER)
        replica.cli("source", "add", "main", "--url", fake.url, "--key", "k" * 32,
                    "--secret", "s" * 64, "--tables", "customer", "--poll-interval", "3600",
                    "--push-secret", PUSH)
        replica.serve()
        source_ready(replica)
        wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE ended_at IS NULL")
                   == 0, timeout=20, what="the first run to end")
        assert "/health" in fake.paths        # the scheduled first pull probes
        fake.paths.clear()
        body = '{"event":"changes","head":1}'
        assert requests.post(replica.url + "/api/notify", data=body, headers=signed(body),
                             timeout=5).status_code == 202
        wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE trigger = "
                                       "'Webhook' AND ended_at IS NOT NULL") == 1,
                   timeout=20, what="the webhook pull")
        assert "/api/changes" in fake.paths and "/health" not in fake.paths, fake.paths
    finally:
        fake.close()


def test_forged_and_replayed_notify_refused(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve()
    source_ready(replica)
    body = '{"event":"changes","head":1}'
    url = replica.url + "/api/notify"
    ok = signed(body)
    assert requests.post(url, data=body, headers=ok, timeout=5).status_code == 202
    r = requests.post(url, data=body, headers=ok, timeout=5)          # replay
    assert r.status_code == 409 and "replay" in r.json()["error"]
    forged = signed(body, secret="not-the-secret")
    assert requests.post(url, data=body, headers=forged, timeout=5).status_code == 401
    tampered = dict(signed(body))
    assert requests.post(url, data=body.replace("1", "2"), headers=tampered,
                         timeout=5).status_code == 401
    # 5 s past the 300 s window: time() in C reads a coarse clock that can still be in the
    # previous second when Python's time.time() is in the next (the exact edge is unit-tested)
    stale = signed(body, ts=int(time.time()) - 305)
    assert requests.post(url, data=body, headers=stale, timeout=5).status_code == 401
    future = signed(body, ts=int(time.time()) + 305)
    assert requests.post(url, data=body, headers=future, timeout=5).status_code == 401
    assert requests.post(url, data=body, timeout=5).status_code == 401
    bad_ts = dict(ok, **{"X-TDGL-Timestamp": "soon"})
    assert requests.post(url, data=body, headers=bad_ts, timeout=5).status_code == 401


def test_notify_flood_collapses_into_few_pulls(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", PUSH)
    replica.serve()
    source_ready(replica)
    before = replica.one("SELECT count(*) FROM tdgl_replica.runs")
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', 1 FROM generate_series(1, 3000) g")
    sess = requests.Session()
    for i in range(100):
        body = json.dumps({"event": "changes", "head": i})
        assert sess.post(replica.url + "/api/notify", data=body, headers=signed(body),
                         timeout=5).status_code == 202
    replica.wait_rows("SELECT count(*) FROM customer", [(3000,)], timeout=20)
    replica.wait_idle()
    runs = replica.one("SELECT count(*) FROM tdgl_replica.runs") - before
    assert 1 <= runs < 50


def test_busy_log_is_streamed_in_paced_pages(primary, replica):
    """At the head of a log written without pause, the next page is asked for at most every
    20 ms (PULL_HEAD_GAP_MS), not as soon as the last one is applied: pages of a change or two
    would keep a CPU busy on both sites. Unpaced, a replica takes a page every few ms here."""
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600", "--long-poll")
    replica.serve()
    source_ready(replica)
    pages0, runs0 = replica.sql("SELECT coalesce(sum(pages), 0), count(*) FROM tdgl_replica.runs")[0]
    t0 = time.monotonic()
    for i in range(1, 601):           # one commit every ~3 ms, for ~2 s
        primary.sql("INSERT INTO customer VALUES (%s, 'n', 'X', 1)", (i,))
        time.sleep(0.003)  # noqa: a steady writer, not a burst
    elapsed = time.monotonic() - t0
    # a page's count in tdgl_replica.runs commits with its rows (apply_page), so nothing to wait for
    replica.wait_rows("SELECT count(*) FROM customer", [(600,)], timeout=30)
    pages, runs = replica.sql("SELECT coalesce(sum(pages), 0), count(*) FROM tdgl_replica.runs")[0]
    pages, runs = pages - pages0, runs - runs0
    # paced within a pull and across long-poll rounds (a page with more=false ends a round)
    assert pages <= elapsed / 0.02 + 5, (pages, runs, elapsed)


def test_a_pull_keeps_one_connection_to_the_primary(replica):
    """The requests of a pull (probe, snapshot, five pages) travel over one kept-alive
    connection: a connection per request cost the primary a thread and a memory pool each.
    (The initial copy's rows are fetched by the copy's own thread, on its own connection.)"""
    from test_attack_replica import FakePrimary, _change, _page   # imports this module
    conns = []

    class Paging(FakePrimary):
        def _answer(self, req):
            if req.path != "/api/rows":
                conns.append(req.client)
            if req.path == "/api/changes":
                n = int(req.query["cursor"][0][1:])          # cursor "c<n>": n changes served
                return 200, _page([_change(n + 1)], cursor=f"c{n + 1}", more=n + 1 < 5)
            return super()._answer(req)

    fake = Paging()
    try:
        replica.sql(CUSTOMER)
        replica.cli("source", "add", "main", "--url", fake.url, "--key", "k" * 32,
                    "--secret", "s" * 64, "--tables", "customer", "--batch-size", "1")
        r = pull(replica)
        assert r["synced"] == 5, r
        assert replica.one("SELECT count(*) FROM customer") == 5
        assert len(conns) >= 7 and len(set(conns)) == 1, conns
    finally:
        fake.close()


def test_long_poll_mode_delivers_within_1s(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600", "--long-poll")
    replica.serve()
    source_ready(replica)
    assert best_delivery_seconds(primary, replica) < 1.0


def test_primary_down_backoff_then_full_catch_up(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    replica.serve()
    source_ready(replica)
    primary.server.stop()
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', g FROM generate_series(1, 700) g")
    replica.api("POST", "/api/sources/main/pull")
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE status = 'Failed'") >= 3,
               timeout=30, what="failed runs")
    log = replica.server.log()
    assert "next attempt in 1 s" in log and "next attempt in 2 s" in log
    assert "primary unreachable" in replica.one(
        "SELECT error FROM tdgl_replica.runs WHERE status = 'Failed' ORDER BY id DESC LIMIT 1")
    primary.server.start()
    replica.wait_rows("SELECT count(*) FROM customer", [(700,)], timeout=30)
    assert rows_md5(replica, "customer") == rows_md5(primary, "customer")


def test_status_shows_each_workers_state_backoff_then_idle(primary, replica):
    """GET /api/status names the scheduler state of each worker (docs/design.md, "Scheduler
    states"): backoff while its primary is down, idle again once a pull succeeded."""
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    replica.serve()
    source_ready(replica)

    def worker():
        return replica.api("GET", "/api/status").json()["workers"][0]

    wait_until(lambda: worker()["state"] == "idle", timeout=20, what="an idle worker")
    primary.server.stop()
    replica.api("POST", "/api/sources/main/pull")
    wait_until(lambda: worker()["state"] == "backoff", timeout=20, what="the worker to back off")
    assert worker()["backoff_s"] >= 1
    primary.server.start()
    replica.api("POST", "/api/sources/main/pull")
    wait_until(lambda: worker()["state"] == "idle" and worker()["backoff_s"] == 0, timeout=30,
               what="the worker idle again")


def test_one_failing_source_never_affects_another(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "1")
    replica.cli("source", "add", "dead", "--url", f"http://127.0.0.1:{free_port()}",
                "--key", "k", "--secret", "s", "--tables", "customer", "--poll-interval", "1")
    replica.serve()
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    replica.wait_rows("SELECT id FROM customer", [(1,)], timeout=20)
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE source = 'dead' "
                                   "AND status = 'Failed'") >= 2, timeout=20)
    primary.sql("INSERT INTO customer VALUES (2, 'b', 'X', 1)")
    replica.wait_rows("SELECT id FROM customer ORDER BY id", [(1,), (2,)], timeout=20)
    assert replica.api("GET", "/health").status_code == 200


def test_sigkill_mid_batch_every_change_applied_exactly_once(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "1", "--batch-size", "50")
    pull(replica)   # initial sync of the empty table: everything below is streamed
    total = 12000
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', g FROM generate_series(1, 8000) g")
    primary.sql("UPDATE customer SET name = 'u' WHERE id % 2 = 0")   # 4000 more, one batch
    replica.serve()
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") > 1500, timeout=30,
               interval=0.005, what="the replica to be mid-stream")
    replica.server.kill()
    done = replica.one("SELECT count(*) FROM tdgl_replica.sync_entries")
    assert done < total, "the replica finished before it could be killed"
    replica.server.start()
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") >= total, timeout=60,
               what="catch-up after the kill")
    assert replica.sql("SELECT change_id FROM tdgl_replica.sync_entries GROUP BY change_id "
                       "HAVING count(*) <> 1") == []
    assert replica.one("SELECT count(DISTINCT change_id) FROM tdgl_replica.sync_entries") == total
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE status <> 'Synced'") == 0
    assert rows_md5(replica, "customer") == rows_md5(primary, "customer")


def _expire(token):
    """A cursor from the future: the primary answers 410 as for a restored database."""
    pad = "=" * (-len(token) % 4)
    text = base64.urlsafe_b64decode(token + pad).decode()
    parts = text.split(".")
    parts[1] = "0"                     # no batch open
    parts[4] = "999999999:999999999:"  # s2
    parts[5] = parts[6] = "999999999"  # l2, u2
    parts[2], parts[3], parts[7] = "", "0", "0"
    return base64.urlsafe_b64encode(".".join(parts).encode()).decode().rstrip("=")


def test_expired_cursor_triggers_a_logged_resync(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2)")
    pull(replica)
    # a row the primary no longer has (deleted while the cursor was expired)
    replica.sql("BEGIN; SET LOCAL tdgl.applying = on; "
                "INSERT INTO customer VALUES (99, 'gone', 'X', 0); COMMIT")
    primary.sql("UPDATE customer SET name = 'b2' WHERE id = 2")
    cursor = replica.one("SELECT cursor FROM tdgl_replica.sources")
    replica.sql("UPDATE tdgl_replica.sources SET cursor = %s", (_expire(cursor),))
    p = replica.cli("pull", "main")
    assert "cursor expired, re-syncing" in p.stderr
    assert json.loads(p.stdout)["status"] == "Success"
    assert rows_md5(replica, "customer") == rows_md5(primary, "customer")
    primary.sql("INSERT INTO customer VALUES (3, 'c', 'X', 3)")
    pull(replica)
    assert replica.sql("SELECT id FROM customer ORDER BY id") == [(1,), (2,), (3,)]


def test_attachment_files_fetched_inside_the_files_dir(primary, replica):
    pdir = tempfile.mkdtemp(prefix="tdgl-pfiles-")
    rdir = tempfile.mkdtemp(prefix="tdgl-rfiles-")
    os.makedirs(os.path.join(pdir, "inv"))
    with open(os.path.join(pdir, "inv", "a.txt"), "wb") as f:
        f.write(b"attachment body\n")
    ddl = "CREATE TABLE doc (id int PRIMARY KEY, file text)"
    primary.sql(ddl)
    replica.sql(ddl)
    primary.track("doc", "--attach-columns", "file")
    primary.serve("--files-dir", pdir)
    key, secret = primary.keygen()
    replica.cli("source", "add", "main", "--url", primary.url, "--key", key, "--secret", secret,
                "--tables", "doc", "--attach", "doc=file")
    primary.sql("INSERT INTO doc VALUES (1, '/files/inv/a.txt'), (2, '/files/../etc/passwd'), "
                "(3, '/files//x'), (4, 'https://elsewhere/x')")
    env = {"TDGL_FILES_DIR": rdir}
    replica.cli("pull", "main", env=env)
    with open(os.path.join(rdir, "inv", "a.txt"), "rb") as f:
        assert f.read() == b"attachment body\n"
    assert sorted(os.listdir(rdir)) == ["inv"]
    assert replica.one("SELECT count(*) FROM doc") == 4
    # unchanged file: not fetched again
    mtime = os.stat(os.path.join(rdir, "inv", "a.txt")).st_mtime_ns
    primary.sql("UPDATE doc SET id = 10 WHERE id = 1")
    primary.sql("INSERT INTO doc VALUES (5, '/files/inv/a.txt')")
    p = replica.cli("pull", "main", env=env)
    assert "fetched" not in p.stderr.replace("fetched=", "")
    assert os.stat(os.path.join(rdir, "inv", "a.txt")).st_mtime_ns == mtime


def test_metrics_count_pulls(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    replica.serve()
    source_ready(replica)
    text = replica.api("GET", "/metrics").text
    assert "tdgl_replica_pulls_total" in text
    status = replica.api("GET", "/api/status").json()
    assert status["sources"][0]["name"] == "main" and "open_conflicts" in status

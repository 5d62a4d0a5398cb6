"""Sync-job semantics of the replica (issue 4): retries with backoff, health check, pull-level
retries, control flags, dry run, schedules, run records, run summary, live events, rate
limits. Two real sites and real processes; an HTTP recorder/fault proxy in front of the
primary where a test needs to count or break requests."""
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import requests

from harness import StubHTTP, free_port, wait_until
from sites import ADMIN_TOKEN, SECRET_KEY
from test_replica import CUSTOMER, pair, pull  # noqa: F401 - also patches harness

CHECKED = ("CREATE TABLE customer (id int PRIMARY KEY, name text, company text, "
           "amount numeric(12,2) CHECK (amount >= 0))")


class Proxy(StubHTTP):
    """An HTTP proxy in front of the primary that records every request (time, path) and
    answers `status` instead of forwarding to the first `fail[prefix]` requests whose path
    starts with prefix."""

    def __init__(self, target):
        self.target = target
        self.requests = []
        self.fail = {}
        self.status = 503
        self.lock = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, req):
        with self.lock:
            self.requests.append((time.monotonic(), req.raw))
            hit = next((p for p, n in self.fail.items() if n > 0 and req.raw.startswith(p)), None)
            if hit:
                self.fail[hit] -= 1
        if hit:
            return self.status, b'{"error":"injected"}'
        r = requests.get(self.target + req.raw, timeout=60, headers={
            k: v for k, v in req.headers.items() if k.lower() == "authorization"})
        return r.status_code, r.content

    def paths(self, prefix):
        with self.lock:
            return [p for _, p in self.requests if p.startswith(prefix)]


def via_proxy(primary, replica, ddl=CUSTOMER, tables=("customer",), *args):
    """pair() with the source pointing at a recording proxy; returns the proxy."""
    for stmt in ddl if isinstance(ddl, (list, tuple)) else [ddl]:
        primary.sql(stmt)
        replica.sql(stmt)
    for t in tables:
        primary.track(t)
    primary.serve()
    proxy = Proxy(primary.url)
    key, secret = primary.keygen("main")
    replica.cli("source", "add", "main", "--url", proxy.url, "--key", key, "--secret", secret,
                "--tables", ",".join(tables), *args)
    return proxy


def log_entries(replica, status=None):
    q = "SELECT id, tbl, pk::text, op, status, reason, attempts, next_retry_at, error " \
        "FROM tdgl_replica.sync_entries"
    if status:
        return replica.sql(q + " WHERE status = %s ORDER BY id, seq", (status,))
    return replica.sql(q + " ORDER BY id")


def seconds_until(ts):
    return (ts - datetime.now(timezone.utc)).total_seconds()


def source_set(replica, *args, check=True):
    return replica.cli("source", "set", "main", *args, check=check)


def serve_idle(replica):
    """Serves the replica and waits for the pull every worker makes when it starts, so that
    what the test does next is not picked up by that pull."""
    done = replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE ended_at IS NOT NULL")
    replica.serve()
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE ended_at IS NOT NULL")
               > done, timeout=20, what="the workers' first pull")


# ---------------------------------------------------------------- retries

def test_failed_change_is_retried_automatically_once_due(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], replica_ddl=[CHECKED])
    source_set(replica, "--retry-base", "0")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1), (2, 'b', 'X', 2)")
    r = pull(replica)
    assert r["status"] == "Partial" and r["failed"] == 1 and r["synced"] == 1, r
    (lid, _, _, _, status, _, attempts, _, error), = log_entries(replica, "Failed")
    assert attempts == 1 and "customer_amount_check" in error
    replica.sql("ALTER TABLE customer DROP CONSTRAINT customer_amount_check")
    r = pull(replica)                       # nothing new on the primary: the retry is due
    assert r["status"] == "Success", r
    assert replica.one("SELECT amount FROM customer WHERE id = 1") == -1
    assert replica.one("SELECT status || ' ' || attempts FROM tdgl_replica.sync_entries WHERE id = %s",
                       (lid,)) == "Synced 2"


def test_retry_backoff_doubles_up_to_max_retries(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], replica_ddl=[CHECKED])
    source_set(replica, "--retry-base", "100", "--max-retries", "3")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1)")
    pull(replica)
    (lid, *_), = log_entries(replica, "Failed")
    due = replica.one("SELECT next_retry_at FROM tdgl_replica.sync_entries WHERE id = %s", (lid,))
    assert 90 < seconds_until(due) <= 100
    for attempt, delay in ((2, 200), (3, 400), (4, None)):
        replica.cli("retry", str(lid))     # forced now, still failing
        att, due = replica.sql("SELECT attempts, next_retry_at FROM tdgl_replica.sync_entries "
                               "WHERE id = %s", (lid,))[0]
        assert att == attempt
        if delay is None:
            assert due is None              # max_retries retries made: no more automatic ones
        else:
            assert delay - 10 < seconds_until(due) <= delay
    # not due: a pull does not retry it
    pull(replica)
    assert replica.one("SELECT attempts FROM tdgl_replica.sync_entries WHERE id = %s", (lid,)) == 4


def test_failed_change_superseded_by_a_later_change_is_skipped(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], replica_ddl=[CHECKED])
    source_set(replica, "--retry-base", "0")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1)")
    pull(replica)
    (lid, *_), = log_entries(replica, "Failed")
    primary.sql("UPDATE customer SET amount = 5, name = 'newer' WHERE id = 1")
    pull(replica)
    status, reason = replica.sql("SELECT status, reason FROM tdgl_replica.sync_entries WHERE id = %s",
                                 (lid,))[0]
    assert status == "Skipped" and "superseded" in reason
    assert replica.sql("SELECT name, amount FROM customer") == [("newer", 5)]
    # a forced retry of it is refused: it is no longer Failed
    p = replica.cli("retry", str(lid), check=False)
    assert p.returncode == 1 and "only Failed" in p.stderr


def test_scheduler_wakes_for_a_due_retry_between_scheduled_pulls(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         replica_ddl=[CHECKED])
    source_set(replica, "--retry-base", "1")
    pull(replica)
    serve_idle(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1)")
    r = replica.api("POST", "/api/sources/main/pull?wait=1").json()
    assert r["failed"] == 1, r
    replica.sql("ALTER TABLE customer DROP CONSTRAINT customer_amount_check")
    replica.wait_rows("SELECT id FROM customer", [(1,)], timeout=20)
    assert replica.one("SELECT trigger FROM tdgl_replica.runs ORDER BY id DESC LIMIT 1") == "Retry"
    assert log_entries(replica, "Failed") == []


def test_retry_endpoint_and_cli_force_a_retry_now(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         replica_ddl=[CHECKED])
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1), (2, 'b', 'X', -2), "
                "(3, 'c', 'X', -3)")
    pull(replica)
    ids = [e[0] for e in log_entries(replica, "Failed")]
    assert len(ids) == 3
    replica.sql("ALTER TABLE customer DROP CONSTRAINT customer_amount_check")
    serve_idle(replica)
    r = replica.api("POST", f"/api/log/{ids[0]}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["status"] == "Synced" and r.json()["entry"]["attempts"] == 2
    assert r.json()["run"]["trigger"] == "Retry" and r.json()["run"]["synced"] == 1
    assert replica.api("POST", f"/api/log/{ids[0]}/retry").status_code == 409
    assert replica.api("POST", "/api/log/999999/retry").status_code == 404
    assert replica.api("POST", "/api/log/abc/retry").status_code == 400
    assert requests.post(replica.url + f"/api/log/{ids[1]}/retry", timeout=5).status_code == 401
    out = replica.cli("retry", "--all-failed").stdout
    assert json.loads(out)[0]["synced"] == 2
    assert replica.sql("SELECT id FROM customer ORDER BY id") == [(1,), (2,), (3,)]
    assert log_entries(replica, "Failed") == []
    p = replica.cli("retry", check=False)
    assert p.returncode == 2 and "usage" in p.stderr


# ---------------------------------------------------------------- health, pull-level retries

def test_unreachable_primary_fails_the_run_and_touches_nothing(primary, replica):
    replica.sql(CUSTOMER)
    dead = f"http://127.0.0.1:{free_port()}"
    replica.cli("source", "add", "main", "--url", dead, "--key", "k", "--secret", "s",
                "--tables", "customer")
    r = pull(replica, check=False)
    assert r["status"] == "Failed" and r["error"].startswith("primary unreachable"), r
    run = replica.sql("SELECT status, error, fetched FROM tdgl_replica.runs")
    assert len(run) == 1 and run[0][0] == "Failed" and "primary unreachable" in run[0][1]
    assert replica.one("SELECT cursor FROM tdgl_replica.sources") is None
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") == 0
    assert replica.one("SELECT last_status FROM tdgl_replica.sources") == "Failed"


def test_health_check_runs_before_every_pull(primary, replica):
    proxy = via_proxy(primary, replica)
    pull(replica)
    assert proxy.paths("/health")
    calls = len(proxy.paths("/api/changes"))
    proxy.fail["/health"] = 1
    r = pull(replica, check=False)
    assert r["status"] == "Failed" and "primary unreachable" in r["error"], r
    assert len(proxy.paths("/api/changes")) == calls     # nothing else was asked
    assert pull(replica)["status"] == "Success"
    proxy.close()


def test_pull_level_failures_are_retried_with_backoff(primary, replica):
    proxy = via_proxy(primary, replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (2, 'b', 'X', 2)")
    proxy.fail["/api/changes"] = 2          # two 503s, then the primary answers
    r = pull(replica)
    assert r["status"] == "Success" and r["synced"] == 1, r
    assert len(proxy.paths("/api/changes")) == 1 + 3
    gaps = [b - a for (a, pa), (b, pb) in zip(proxy.requests, proxy.requests[1:])
            if pa.startswith("/api/changes") and pb.startswith("/api/changes")][-2:]
    assert gaps[1] > gaps[0]                # exponential: each wait longer than the last
    proxy.fail["/api/changes"] = 100        # never answers: 5 attempts, then Failed
    before = len(proxy.paths("/api/changes"))
    r = pull(replica, check=False)
    assert r["status"] == "Failed" and "503" in r["error"], r
    assert len(proxy.paths("/api/changes")) - before == 5
    proxy.close()


# ---------------------------------------------------------------- control flags

def test_control_flags_skip_disabled_operations(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2)")
    pull(replica)
    source_set(replica, "--table", "customer", "--insert-enabled", "off",
               "--update-enabled", "off", "--delete-enabled", "off")
    primary.sql("INSERT INTO customer VALUES (3, 'c', 'X', 3)")
    primary.sql("UPDATE customer SET name = 'a2' WHERE id = 1")
    primary.sql("DELETE FROM customer WHERE id = 2")
    r = pull(replica)
    assert r["skipped"] == 3 and r["synced"] == 0, r
    assert replica.sql("SELECT id, name FROM customer ORDER BY id") == [(1, "a"), (2, "b")]
    reasons = {e[5] for e in log_entries(replica, "Skipped")}
    assert {"insert disabled", "update disabled", "delete disabled"} <= reasons
    listed = json.loads(replica.cli("source", "list").stdout)[0]["tables"][0]
    assert listed["insert_enabled"] is False and listed["update_without_changes"] is False
    p = source_set(replica, "--table", "nope", "--insert-enabled", "on", check=False)
    assert p.returncode != 0 and "not configured" in p.stderr
    p = source_set(replica, "--table", "customer", "--insert-enabled", "maybe", check=False)
    assert p.returncode == 2


def test_control_flags_settable_over_the_api(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    pull(replica)
    serve_idle(replica)
    r = replica.api("PATCH", "/api/sources/main",
                    json={"tables": {"customer": {"insert_enabled": False}}})
    assert r.status_code == 200, r.text
    assert r.json()["tables"][0]["insert_enabled"] is False
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    assert replica.api("POST", "/api/sources/main/pull?wait=1").json()["skipped"] == 1
    r = replica.api("PATCH", "/api/sources/main",
                    json={"table": "customer", "insert_enabled": True})
    assert r.status_code == 200 and r.json()["tables"][0]["insert_enabled"] is True
    for bad in ({"tables": {"customer": {"insert_enabled": "no"}}}, {"nope": 1},
                {"tables": {"customer": {"frobnicate": True}}}, {"insert_enabled": False},
                {"max_retries": -1}, [1]):
        r = replica.api("PATCH", "/api/sources/main", json=bad)
        assert r.status_code == 400 and "error" in r.json(), bad
    assert replica.api("PATCH", "/api/sources/nope", json={}).status_code == 404
    assert replica.api("PATCH", "/api/sources/main", data="{bad").status_code == 400


def test_update_without_changes_is_skipped_unless_enabled(primary, replica):
    pair(primary, replica,
         "CREATE TABLE customer (id int PRIMARY KEY, name text, note text)", ["customer"],
         replica_ddl=["CREATE TABLE customer (id int PRIMARY KEY, name text)"])
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'n1')")
    pull(replica)
    primary.sql("UPDATE customer SET note = 'n2' WHERE id = 1")   # nothing the replica has
    r = pull(replica)
    assert r["skipped"] == 1 and r["synced"] == 0, r
    assert log_entries(replica, "Skipped")[-1][5] == "no changes"
    source_set(replica, "--table", "customer", "--update-without-changes", "on")
    primary.sql("UPDATE customer SET note = 'n3' WHERE id = 1")
    r = pull(replica)
    assert r["synced"] == 1 and r["skipped"] == 0, r


# ---------------------------------------------------------------- dry run

def test_dry_run_reports_each_row_and_writes_nothing(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2), "
                "(3, 'c', 'X', 3)")
    pull(replica)
    serve_idle(replica)
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 3")
    source_set(replica, "--table", "customer", "--delete-enabled", "off")
    primary.sql("UPDATE customer SET name = 'a2', amount = 1.5 WHERE id = 1")
    primary.sql("DELETE FROM customer WHERE id = 2")
    primary.sql("UPDATE customer SET name = 'p' WHERE id = 3")
    primary.sql("INSERT INTO customer VALUES (4, 'd', 'X', 4)")
    before = replica.sql("SELECT * FROM customer ORDER BY id")
    cursor = replica.one("SELECT cursor FROM tdgl_replica.sources")
    r = replica.api("POST", "/api/sources/main/pull?dry_run=1")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["dry_run"] is True and d["status"] == "Skipped"
    rows = {(x["pk"]["id"], x["action"]): x for x in d["rows"]}
    upd = rows[(1, "update")]
    assert {c["column"]: (c["old"], c["new"]) for c in upd["changes"]} == {
        "name": ("a", "a2"), "amount": (1, 1.5)}
    assert rows[(2, "skip")]["reason"] == "delete disabled"
    assert rows[(3, "conflict")]
    assert (4, "insert") in rows
    assert replica.sql("SELECT * FROM customer ORDER BY id") == before
    assert replica.one("SELECT cursor FROM tdgl_replica.sources") == cursor
    assert replica.one("SELECT count(*) FROM tdgl_replica.conflicts") == 0
    run = replica.sql("SELECT status, dry_run, trigger FROM tdgl_replica.runs ORDER BY id DESC LIMIT 1")
    assert run == [("Skipped", True, "API")]
    # the CLI gives the same report; then a real pull applies it all
    out = json.loads(replica.cli("pull", "main", "--dry-run").stdout)
    assert out["dry_run"] is True and len(out["rows"]) == 4
    assert replica.sql("SELECT * FROM customer ORDER BY id") == before
    r = pull(replica)
    assert r["synced"] == 2 and r["conflicts"] == 1, r
    assert replica.api("POST", "/api/sources/main/pull?dry_run=maybe").status_code == 400


def test_dry_run_of_an_initial_sync_lists_inserts(primary, replica):
    primary.sql(CUSTOMER)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2)")
    pair(primary, replica, [], ["customer"], replica_ddl=[CUSTOMER])
    out = json.loads(replica.cli("pull", "main", "--dry-run").stdout)
    assert sorted((x["pk"]["id"], x["action"]) for x in out["rows"]) == [
        (1, "insert"), (2, "insert")]
    assert replica.one("SELECT count(*) FROM customer") == 0
    assert replica.one("SELECT cursor FROM tdgl_replica.sources") is None


# ---------------------------------------------------------------- schedules

def test_cron_schedule_set_and_shown_with_its_next_run(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    source_set(replica, "--cron", "30 4,16 * * 1-5", "--tz", "America/New_York")
    s = json.loads(replica.cli("source", "show", "main").stdout)
    assert s["cron"] == "30 4,16 * * 1-5" and s["tz"] == "America/New_York"
    nxt = datetime.fromisoformat(s["next_run_at"].replace("Z", "+00:00"))
    local = nxt.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) in ((4, 30), (16, 30)) and local.weekday() < 5
    assert nxt > datetime.now(timezone.utc) and nxt - datetime.now(timezone.utc) < \
        timedelta(days=4)
    replica.serve()

    def worker():
        st = replica.api("GET", "/api/status").json()
        w = [w for w in st["workers"] if w["source"] == "main"]
        return w and w[0].get("next_run_at") == s["next_run_at"] and w[0]
    w = wait_until(worker, timeout=20, what="the worker to follow the cron schedule")
    assert w["schedule"] == "cron 30 4,16 * * 1-5 (America/New_York)"
    # back to an interval
    source_set(replica, "--cron", "off", "--poll-interval", "90")
    s = json.loads(replica.cli("source", "show", "main").stdout)
    assert s["cron"] is None and s["poll_interval"] == 90


def test_invalid_cron_or_zone_refused_naming_the_field(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    p = source_set(replica, "--cron", "0 25 * * *", check=False)
    assert p.returncode == 2 and "field 2 (hour): 25 out of range 0-23" in p.stderr
    p = source_set(replica, "--cron", "*/5 * * *", check=False)
    assert p.returncode == 2 and "expected 5 fields" in p.stderr
    p = source_set(replica, "--cron", "0 4 * * MON", "--tz", "Mars/Olympus", check=False)
    assert p.returncode == 2 and "Mars/Olympus" in p.stderr
    p = source_set(replica, "--cron", "0 4 * * MON", "--tz", "../../etc/passwd", check=False)
    assert p.returncode == 2
    assert replica.one("SELECT cron FROM tdgl_replica.sources") is None
    replica.serve()
    r = replica.api("PATCH", "/api/sources/main", json={"cron": "0 0 * 13 *"})
    assert r.status_code == 400 and "field 4 (month): 13 out of range 1-12" in r.json()["error"]
    r = replica.api("PATCH", "/api/sources/main", json={"cron": "*/5 * * * *", "tz": "UTC"})
    assert r.status_code == 200 and r.json()["cron"] == "*/5 * * * *"


# ---------------------------------------------------------------- run records

def test_runs_record_trigger_counts_and_duration(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600",
         "--push-secret", "push-secret-for-tests-0123456789")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2)")
    replica.serve()
    wait_until(lambda: replica.one("SELECT status FROM tdgl_replica.runs WHERE trigger = 'Initial'")
               == "Success", timeout=20, what="the initial run")
    primary.sql("INSERT INTO customer VALUES (3, 'c', 'X', 3)")
    pull(replica)                                                    # Manual
    primary.sql("INSERT INTO customer VALUES (4, 'd', 'X', 4)")
    replica.api("POST", "/api/sources/main/pull?wait=1")             # API
    runs = replica.api("GET", "/api/runs").json()
    by = {r["trigger"]: r for r in runs}
    assert set(by) >= {"Initial", "Manual", "API"}
    assert by["Initial"]["fetched"] == 2 and by["Initial"]["synced"] == 2
    assert by["Manual"]["synced"] == 1 and by["API"]["synced"] == 1
    for r in runs:
        assert r["status"] == "Success" and r["duration_ms"] is not None and r["ended_at"]
    text = replica.cli("runs").stdout
    assert "Initial" in text and "Manual" in text and "API" in text
    src = replica.api("GET", "/api/sources").json()[0]
    assert src["last_status"] == "Success" and src["last_run_at"]
    assert replica.api("GET", "/api/runs?source=main&limit=1").json()[0]["trigger"] == "API"


def test_run_summary_logged_in_text_and_json_without_secrets(primary, replica):
    key, secret = pair(primary, replica, CUSTOMER, ["customer"])
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    p = replica.cli("pull", "main")
    line = [ln for ln in p.stderr.splitlines() if "run summary" in ln]
    assert len(line) == 1 and "source=main" in line[0] and "status=Success" in line[0]
    assert "synced=1" in line[0] and "duration_ms=" in line[0]
    primary.sql("INSERT INTO customer VALUES (2, 'b', 'X', 1)")
    p = replica.cli("pull", "main", env={"TDGL_LOG_FORMAT": "json"})
    lines = [json.loads(ln) for ln in p.stderr.splitlines() if ln.startswith("{")]
    summ = [x for x in lines if x["msg"].startswith("run summary")]
    assert len(summ) == 1 and "synced=1" in summ[0]["msg"] and summ[0]["level"] == "INFO"
    for out in (p.stderr, p.stdout):
        assert secret not in out and SECRET_KEY not in out and ADMIN_TOKEN not in out


# ---------------------------------------------------------------- live events

class Subscriber:
    """Reads GET /api/events on a plain socket (HTTP/1.0: no chunking, closes at once) in a
    thread; .events is the list of (type, data)."""

    def __init__(self, replica, token=ADMIN_TOKEN):
        self.events = []
        self.sock = socket.create_connection(("127.0.0.1", replica.server.port), timeout=60)
        self.sock.sendall(f"GET /api/events HTTP/1.0\r\nHost: x\r\n"
                          f"Authorization: Bearer {token}\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")
        self.status = int(self.f.readline().split()[1])
        self.headers = {}
        for line in iter(self.f.readline, b"\r\n"):
            k, _, v = line.decode().partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        etype, data = None, None
        try:
            for raw in self.f:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    etype = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and etype:
                    self.events.append((etype, data))
                    etype, data = None, None
        except (OSError, ValueError):
            pass   # the test closed the stream

    def types(self):
        return [t for t, _ in self.events]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_events_stream_runs_and_conflicts_to_several_subscribers(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    serve_idle(replica)
    assert requests.get(replica.url + "/api/events", timeout=5).status_code == 401
    a, b = Subscriber(replica), Subscriber(replica)
    assert a.status == 200 and a.headers["content-type"].startswith("text/event-stream")
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 1")
    primary.sql("UPDATE customer SET name = 'primary' WHERE id = 1")
    r = replica.api("POST", "/api/sources/main/pull?wait=1").json()
    assert r["conflicts"] == 1
    cid = replica.one("SELECT id FROM tdgl_replica.conflicts")
    replica.api("POST", f"/api/conflicts/{cid}/resolve", json={"resolution": "Keep Local"})
    for s in (a, b):
        wait_until(lambda s=s: "conflict.resolved" in s.types(), what="conflict.resolved")
        # the workers' first pull may announce its end after the subscription: skip it
        mine = [t for t, d in s.events if t.startswith("conflict.") or d["trigger"] == "API"]
        assert mine[:4] == ["run.started", "conflict.created", "run.completed",
                            "conflict.resolved"], s.types()
        done = dict(s.events)["run.completed"]
        assert done["source"] == "main" and done["conflicts"] == 1 and done["trigger"] == "API"
        assert dict(s.events)["conflict.created"]["id"] == cid
        assert dict(s.events)["conflict.resolved"]["resolution"] == "Keep Local"
    a.close()
    # a failed run: the primary goes away
    primary.server.stop()
    replica.api("POST", "/api/sources/main/pull?wait=1")
    wait_until(lambda: "run.failed" in b.types(), what="run.failed")
    assert "primary unreachable" in dict(b.events)["run.failed"]["error"]
    b.close()


def test_stuck_event_subscriber_never_delays_a_pull(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    pull(replica)
    serve_idle(replica)
    stuck = socket.create_connection(("127.0.0.1", replica.server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode())
    live = Subscriber(replica)
    for i in range(40):                      # never read by `stuck`
        primary.sql("INSERT INTO customer VALUES (%s, 'x', 'X', 1)", (i,))
        r = replica.api("POST", "/api/sources/main/pull?wait=1")
        assert r.status_code == 200 and r.json()["status"] == "Success"
    # (the workers' first pull may announce its end after `live` subscribed: count API runs)
    wait_until(lambda: [d["trigger"] for t, d in live.events if t == "run.completed"]
               .count("API") == 40, timeout=60, what="40 run.completed")
    assert replica.one("SELECT count(*) FROM customer") == 40
    stuck.close()
    live.close()


# ---------------------------------------------------------------- rate limit

def test_rate_limit_spaces_requests_also_during_initial_sync(primary, replica):
    proxy = via_proxy(primary, replica)
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', 1 FROM generate_series(1, 7000) g")
    source_set(replica, "--rate-limit", "5")
    r = pull(replica)                        # initial sync: 3 pages of rows (1000, 2000, 4000)
    assert r["status"] == "Success" and replica.one("SELECT count(*) FROM customer") == 7000
    times = [t for t, _ in proxy.requests]
    assert len(proxy.paths("/api/rows")) >= 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    # 5 per second: requests start 200 ms apart (arrivals jitter by a connection set-up)
    assert times[-1] - times[0] >= 0.2 * len(gaps) - 0.05, gaps
    assert min(gaps) >= 0.12, gaps
    source_set(replica, "--rate-limit", "0")
    proxy.close()

"""Primary operations: migrate, track, purge and 410, push, shutdown, reconnect, CLI."""
import hashlib
import hmac
import json
import signal
import threading
import time

import pytest
import requests

from harness import StubHTTP, free_port, run, wait_until
from sites import PrimarySite
from test_primary import drain, fetch, serve_with_key, site  # noqa: F401


# ---- migrate ----

def test_migrate_twice_is_a_noop(primary):
    def shape():
        return primary.sql(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'tdgl' ORDER BY 1") + primary.sql(
            "SELECT p.proname, md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'tdgl' ORDER BY 1")
    primary.sql("CREATE TABLE t (id int PRIMARY KEY)")
    primary.track("t")
    primary.sql("INSERT INTO t VALUES (1)")
    before = shape()
    primary.migrate()
    assert shape() == before
    assert primary.sql("SELECT version FROM tdgl.schema_version") == [(5,)]
    assert primary.one("SELECT count(*) FROM tdgl.change_log") == 1
    assert primary.one("SELECT count(*) FROM tdgl.tracked_tables") == 1
    primary.sql("INSERT INTO t VALUES (2)")      # capture still works
    assert primary.one("SELECT count(*) FROM tdgl.change_log") == 2


def test_older_schema_version_is_upgraded(primary):
    # an older database lacks what later versions changed: migrate re-runs the script
    primary.sql("UPDATE tdgl.schema_version SET version = 1")
    primary.sql("DROP FUNCTION tdgl.purge(interval)")
    primary.migrate()
    assert primary.sql("SELECT version FROM tdgl.schema_version") == [(5,)]
    assert primary.one("SELECT to_regprocedure('tdgl.purge(interval)') IS NOT NULL")


def test_newer_schema_version_is_refused(primary):
    primary.sql("UPDATE tdgl.schema_version SET version = 6")
    p = primary.cli("migrate", check=False)
    assert p.returncode == 1 and "newer" in p.stderr
    assert primary.one("SELECT version FROM tdgl.schema_version") == 6
    p = primary.cli("serve", "--listen", f"127.0.0.1:{free_port()}", check=False)
    assert p.returncode == 1 and "newer" in p.stderr


def test_bad_conninfo_exits_with_a_clear_message(primary):
    p = primary.cli("serve", env={"TDGL_DB": "host=127.0.0.1 port=1 dbname=x connect_timeout=2"},
                    check=False)
    assert p.returncode == 1 and "cannot connect" in p.stderr
    p = run("tdgl-primary", "tables", env={"TDGL_DB": ""}, check=False)
    assert p.returncode != 0 and "TDGL_DB" in p.stderr
    p = primary.cli("serve", "--listen", "not-an-address", check=False)
    assert p.returncode != 0


def test_cli_help_version_and_usage_errors(primary):
    assert "tdgl-primary" in primary.cli("--version").stdout
    for cmd in ["migrate", "serve", "track", "untrack", "tables", "keygen", "keys", "revoke",
                "purge", "push"]:
        p = primary.cli(cmd, "--help")
        assert p.returncode == 0 and "usage" in p.stdout
    assert "TDGL_LISTEN" in primary.cli("serve", "--help").stdout
    assert primary.cli("frobnicate", check=False).returncode == 2
    assert primary.cli("track", check=False).returncode == 2
    assert primary.cli("serve", "--bogus", check=False).returncode == 2
    assert primary.cli("purge", "--retention", "soon", check=False).returncode == 2


# ---- track ----

def test_track_refuses_nopk_tdgl_and_unknown_tables(primary):
    primary.sql("CREATE TABLE nopk (x int)")
    for table, words in [("nopk", "no primary key"), ("tdgl.change_log", "tdgl"),
                         ("tdgl.api_keys", "tdgl"), ("nosuch", "does not exist")]:
        p = primary.cli("track", table, check=False)
        assert p.returncode == 1, table
        assert words in p.stderr, (table, p.stderr)
    assert primary.one("SELECT count(*) FROM tdgl.tracked_tables") == 0
    primary.sql("CREATE TABLE ok (id int PRIMARY KEY, st int)")
    p = primary.cli("track", "ok", "--status-column", "nosuchcol", check=False)
    assert p.returncode == 1 and "nosuchcol" in p.stderr


def test_untrack_stops_capture(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY)")
    primary.track("t")
    assert "t " in primary.cli("tables").stdout
    primary.sql("INSERT INTO t VALUES (1)")
    primary.cli("untrack", "t")
    primary.sql("INSERT INTO t VALUES (2)")
    assert primary.one("SELECT count(*) FROM tdgl.change_log") == 1
    assert primary.one("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tdgl%'") == 0
    assert primary.cli("untrack", "t", check=False).returncode == 1


def test_status_column_option_and_attach_columns(primary):
    primary.sql("CREATE TABLE doc (id int PRIMARY KEY, state int, file text)")
    primary.track("doc", "--status-column", "state", "--attach-columns", "file")
    assert primary.sql("SELECT status_column, attach_columns FROM tdgl.tracked_tables") == \
        [("state", ["file"])]
    primary.sql("INSERT INTO doc VALUES (1, 0, '/files/a.txt')")
    primary.sql("UPDATE doc SET state = 1")
    assert primary.one("SELECT op FROM tdgl.change_log ORDER BY id DESC LIMIT 1") == "Submit"


# ---- purge and 410 ----

def age_log(site):
    site.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '1 hour'")


def test_purge_keeps_what_an_active_key_still_needs(site):
    site.sql("INSERT INTO customer SELECT g, 'old', 0 FROM generate_series(1, 5) g")
    _, cursor = drain(site)                       # the key has read these five
    site.sql("INSERT INTO customer SELECT g, 'new', 0 FROM generate_series(6, 10) g")
    age_log(site)
    out = site.cli("purge", "--retention", "30m").stdout
    assert "purged 5" in out
    changes, _ = drain(site, cursor)
    assert [c["pk"]["id"] for c in changes] == [6, 7, 8, 9, 10]
    assert site.one("SELECT count(*) FROM tdgl.change_log") == 5


def test_expired_cursor_gets_410(site):
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    _, old_cursor = drain(site)
    site.sql("INSERT INTO customer VALUES (2, 'b', 0)")
    # the key that holds old_cursor has not been seen for longer than the retention
    site.sql("UPDATE tdgl.api_keys SET last_seen = now() - interval '2 hours'")
    other_key, other_secret = site.keygen("other")
    r = site.get("/api/changes", other_key, other_secret)
    newest = r.json()["cursor"]
    age_log(site)
    site.cli("purge", "--retention", "30m")
    assert site.one("SELECT count(*) FROM tdgl.change_log") == 0
    r = fetch(site, old_cursor, expect=410)
    assert r.json()["error"].startswith("cursor expired")
    assert fetch(site, None, expect=410).status_code == 410      # "everything" is gone too
    r = site.get("/api/changes", other_key, other_secret, cursor=newest)
    assert r.status_code == 200


def test_purge_runs_automatically_while_serving(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY)")
    primary.track("t")
    primary.sql("INSERT INTO t SELECT generate_series(1, 10)")
    age_log(primary)
    serve_with_key(primary, "--purge-interval", "1s", "--retention", "30m")
    wait_until(lambda: primary.one("SELECT count(*) FROM tdgl.change_log") == 0, timeout=15,
               what="automatic purge")


# ---- push ----

class Receiver(StubHTTP):
    """A tiny webhook receiver recording every POST as (path, headers, body)."""

    def __init__(self, port=0, status=202):
        self.got = []
        self.status = status
        super().__init__(self._answer, port)

    def _answer(self, req):
        self.got.append((req.path, req.headers, req.body))
        return self.status, b""


PUSH_SECRET = "push-secret-0123456789abcdef"


def check_signed(path, headers, body):
    assert path == "/api/notify"
    ts = headers["X-TDGL-Timestamp"]
    assert abs(int(ts) - time.time()) < 60
    want = hmac.new(PUSH_SECRET.encode(), (ts + ".").encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-TDGL-Signature"] == "sha256=" + want
    j = json.loads(body)
    assert j["event"] == "changes" and isinstance(j["head"], int)
    return j


def test_push_delivers_a_signed_notify(site):
    rcv = Receiver()
    try:
        site.cli("push", "add", f"http://127.0.0.1:{rcv.port}", "--secret", PUSH_SECRET)
        listing = site.cli("push", "list").stdout
        assert f"127.0.0.1:{rcv.port}" in listing and PUSH_SECRET not in listing
        # wait for the server to load the target (reload every few seconds)
        wait_until(lambda: "push target" in site.server.log(), timeout=15, what="target loaded")
        site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
        head = site.one("SELECT max(id) FROM tdgl.change_log")
        # (a notify may also come when the watch starts: replicas catch up after a restart)
        wait_until(lambda: any(json.loads(b)["head"] == head for _, _, b in list(rcv.got)),
                   timeout=10, what="a notify of the new head")
        for got in list(rcv.got):
            check_signed(*got)
        site.cli("push", "remove", f"http://127.0.0.1:{rcv.port}")
        assert "127.0.0.1" not in site.cli("push", "list").stdout
    finally:
        rcv.close()


def test_push_retries_while_target_is_down(site):
    port = free_port()
    site.cli("push", "add", f"http://127.0.0.1:{port}/", "--secret", PUSH_SECRET)
    wait_until(lambda: "push target" in site.server.log(), timeout=15, what="target loaded")
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    wait_until(lambda: "tdgl_push_failed_total 0" not in site.get(
        "/metrics", site.key, site.secret).text, timeout=10, what="a failed push")
    rcv = Receiver(port)
    try:
        wait_until(lambda: rcv.got, timeout=40, what="the retried notify")
        check_signed(*rcv.got[0])
        # the API stayed responsive all along
        assert fetch(site)[0]
    finally:
        rcv.close()


def test_push_add_refuses_bad_input(site):
    assert site.cli("push", "add", "ftp://x", "--secret", PUSH_SECRET, check=False).returncode == 1
    assert site.cli("push", "add", "http://x", "--secret", "short", check=False).returncode == 1
    assert site.cli("push", "add", "http://x", check=False).returncode == 2
    assert site.cli("push", "remove", "999", check=False).returncode == 1


# ---- process ----

def test_sigterm_shuts_down_cleanly(site):
    _, cursor = drain(site)
    result = {}

    def poll():
        try:
            result["r"] = site.get("/api/changes", site.key, site.secret, cursor=cursor, wait=30)
        except requests.RequestException as e:
            result["e"] = e

    t = threading.Thread(target=poll)
    t.start()
    wait_until(lambda: "tdgl_longpoll_waiters 1" in site.get(
        "/metrics", site.key, site.secret).text, what="a long-poll waiter")
    t0 = time.monotonic()
    assert site.server.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 5
    t.join(10)
    assert "stopped" in site.server.log()


def test_sigint_shuts_down_cleanly(site):
    assert site.server.stop(signal.SIGINT, timeout=10) == 0


def test_server_reconnects_after_database_restart(own_cluster, servers, logdir):
    cluster = own_cluster("restart")
    p = PrimarySite(cluster, cluster.new_db("p"), servers, logdir)
    try:
        p.migrate()
        p.sql("CREATE TABLE t (id int PRIMARY KEY)")
        p.track("t")
        serve_with_key(p)
        _, cursor = drain(p)
        p.conn.close()
        cluster.stop()
        r = p.get("/api/changes", p.key, p.secret, cursor=cursor)
        assert r.status_code == 503 and "error" in r.json()
        cluster.start()
        p.conn = cluster.connect(p.dbname)
        wait_until(lambda: p.get("/api/snapshot", p.key, p.secret).status_code == 200,
                   timeout=20, what="the API back")
        p.sql("INSERT INTO t VALUES (1)")
        changes, _ = drain(p, cursor)
        assert [c["pk"] for c in changes] == [{"id": 1}]
        # long-poll works again too (the watch reconnected)
        _, cursor = drain(p, cursor)
        threading.Timer(0.3, lambda: p.sql("INSERT INTO t VALUES (2)")).start()
        ch, _, _ = fetch(p, cursor, wait=10)
        assert [c["pk"] for c in ch] == [{"id": 2}]
    finally:
        p.close()


def test_revoked_key_is_refused_within_two_seconds(site):
    key, secret = site.keygen("temp")
    assert site.get("/api/snapshot", key, secret).status_code == 200
    site.cli("revoke", key)
    t0 = time.monotonic()
    wait_until(lambda: site.get("/api/snapshot", key, secret).status_code == 401, timeout=5,
               what="revocation")
    assert time.monotonic() - t0 < 2.0
    assert "revoked" in site.cli("keys").stdout

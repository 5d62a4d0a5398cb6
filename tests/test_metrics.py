"""Observability: /metrics of both servers exposes the series issue 5 names (primary: changes
captured and served, change-log rows, oldest entry age; replica: pulls, applies by status,
open conflicts, failed changes, lag per source, last run status), in the Prometheus text
format; `tdgl-replica status` prints per source lag, cursor age, last run, open conflicts and
failed changes."""
import re

import requests

from harness import wait_until



CUSTOMER = "CREATE TABLE customer (id int PRIMARY KEY, name text, amount numeric(12,2))"
# The replica refuses big amounts: a way to make one change fail there.
CUSTOMER_REPLICA = ("CREATE TABLE customer (id int PRIMARY KEY, name text, "
                    "amount numeric(12,2) CHECK (amount < 1000))")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}; checks every family
    has HELP and TYPE before its samples."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no # TYPE"
        lab = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        out[(name, lab)] = float(value)
    return out


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())))


def primary_metrics(primary, key, secret):
    r = primary.get("/metrics", key, secret)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return parse(r.text)


def replica_metrics(replica):
    r = replica.api("GET", "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return parse(r.text)


def pair(primary, replica):
    primary.sql(CUSTOMER)
    replica.sql(CUSTOMER_REPLICA)
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen("metrics")
    replica.cli("source", "add", "main", "--url", primary.url, "--key", key, "--secret",
                secret, "--tables", "customer", "--poll-interval", "1h")
    return key, secret


def test_primary_metrics_show_changes_captured_and_served_and_the_log(primary):
    primary.sql(CUSTOMER)
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen()
    primary.sql("INSERT INTO customer SELECT g, 'c' || g, g FROM generate_series(1, 5) g")
    primary.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '1 hour'")
    primary.sql("ANALYZE tdgl.change_log")
    r = primary.get("/api/changes", key, secret, limit=100)
    assert r.status_code == 200 and len(r.json()["changes"]) == 5
    m = primary_metrics(primary, key, secret)
    assert metric(m, "tdgl_changes_captured_total") >= 5
    assert metric(m, "tdgl_changes_served_total") == 5
    assert metric(m, "tdgl_change_log_rows") == 5
    assert 3500 < metric(m, "tdgl_change_log_oldest_age_seconds") < 3700
    assert metric(m, "tdgl_http_requests_total", code="200") >= 1


def test_primary_change_log_rows_counted_before_any_analyze(primary):
    primary.sql(CUSTOMER)
    primary.track("customer")
    primary.serve()
    key, secret = primary.keygen()
    primary.sql("INSERT INTO customer SELECT g, 'c' || g, g FROM generate_series(1, 7) g")
    m = primary_metrics(primary, key, secret)
    assert metric(m, "tdgl_change_log_rows") == 7


def test_primary_metrics_need_the_api_key_unless_public(primary):
    primary.serve()
    assert requests.get(primary.url + "/metrics", timeout=10).status_code == 401
    key, secret = primary.keygen()
    assert primary.get("/metrics", key, "wrong" + secret).status_code == 401
    primary.server.stop()
    primary.serve("--metrics-public")
    r = requests.get(primary.url + "/metrics", timeout=10)
    assert r.status_code == 200 and "tdgl_changes_served_total" in r.text


def test_replica_metrics_need_the_admin_token(replica):
    replica.serve()
    r = requests.get(replica.url + "/metrics", timeout=10)
    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}


def test_replica_metrics_show_pulls_applies_conflicts_failures_lag_and_last_run(primary,
                                                                               replica):
    pair(primary, replica)
    primary.sql("INSERT INTO customer SELECT g, 'c' || g, g FROM generate_series(1, 4) g")
    replica.serve()
    replica.wait_rows("SELECT count(*) FROM customer", [(4,)], timeout=30)
    # a conflict (edited on both sites) and a failure (refused by the replica's CHECK)
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 1")
    primary.sql("UPDATE customer SET name = 'primary' WHERE id = 1")
    primary.sql("INSERT INTO customer VALUES (5, 'big', 5000)")
    # the newest change was captured an hour ago: the lag says so (one transaction, so no
    # pull can see the row before its capture time is moved back)
    primary.sql("BEGIN; INSERT INTO customer VALUES (6, 'old', 6); "
                "UPDATE tdgl.change_log SET changed_at = now() - interval '2 hours' "
                "WHERE id < (SELECT max(id) FROM tdgl.change_log); "
                "UPDATE tdgl.change_log SET changed_at = now() - interval '1 hour' "
                "WHERE id = (SELECT max(id) FROM tdgl.change_log); COMMIT")
    r = replica.api("POST", "/api/sources/main/pull", params={"wait": "1"})
    assert r.status_code in (200, 202), r.text
    # (a scheduled pull may have taken the first changes before the last commit: 202, queued)
    replica.wait_rows("SELECT count(*) FROM customer WHERE id = 6", [(1,)], timeout=30)
    m = wait_until(lambda: (lambda m: m if metric(m, "tdgl_replica_open_conflicts") == 1
                            and metric(m, "tdgl_replica_failed_changes") == 1 else None)(
        replica_metrics(replica)), timeout=30, what="the conflict and the failure in /metrics")
    assert metric(m, "tdgl_replica_pulls_total") >= 2
    assert metric(m, "tdgl_replica_applies_total", status="Synced") >= 5
    assert metric(m, "tdgl_replica_applies_total", status="Failed") >= 1
    assert metric(m, "tdgl_replica_applies_total", status="Skipped") >= 1
    assert metric(m, "tdgl_replica_source_open_conflicts", source="main") == 1
    assert metric(m, "tdgl_replica_source_failed_changes", source="main") == 1
    assert 3500 < metric(m, "tdgl_replica_lag_seconds", source="main") < 3700
    assert 0 <= metric(m, "tdgl_replica_cursor_age_seconds", source="main") < 60
    assert metric(m, "tdgl_replica_last_run_timestamp_seconds", source="main") > 1.7e9
    statuses = {s: metric(m, "tdgl_replica_last_run_status", source="main", status=s)
                for s in ("Success", "Partial", "Failed", "Skipped")}
    assert sum(statuses.values()) == 1, statuses
    last = replica.one("SELECT last_status FROM tdgl_replica.sources WHERE name = 'main'")
    assert statuses[last] == 1
    assert metric(m, "tdgl_replica_database_up") == 1


def test_status_prints_lag_cursor_age_last_run_conflicts_and_failures(primary, replica):
    pair(primary, replica)
    replica.cli("pull", "main")                       # initial sync
    replica.sql("INSERT INTO customer VALUES (1, 'local', 1)")
    primary.sql("INSERT INTO customer VALUES (1, 'primary', 1)")        # conflict
    primary.sql("INSERT INTO customer VALUES (2, 'big', 5000)")         # failure
    primary.sql("UPDATE tdgl.change_log SET changed_at = now() - interval '10 minutes'")
    replica.cli("pull", "main")
    out = replica.cli("status").stdout.splitlines()
    header = out[0].split("\t")
    for col in ("source", "lag_s", "cursor_age_s", "last_status", "last_run", "open_conflicts",
                "failed_changes"):
        assert col in header, header
    row = dict(zip(header, out[1].split("\t")))
    assert row["source"] == "main"
    assert 590 <= int(row["lag_s"]) <= 700
    assert 0 <= int(row["cursor_age_s"]) < 60
    assert row["last_status"] in ("Partial", "Success")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["last_run"])
    assert row["open_conflicts"] == "1" and row["failed_changes"] == "1"

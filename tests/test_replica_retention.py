"""Replica retention: `tdgl-replica purge` and serve's periodic purge delete old Synced and
Skipped log entries and old finished runs; Failed entries, what a retry or an open conflict
still needs, unfinished runs and recent rows stay. Rows are made old by back-dating them."""
import json

import requests

from harness import wait_until
from test_replica import CUSTOMER, pair, pull  # noqa: F401 - also patches harness

CHECKED = ("CREATE TABLE customer (id int PRIMARY KEY, name text, company text, "
           "amount numeric(12,2) CHECK (amount >= 0))")


def backdate(replica, days=30):
    """Makes every log entry and run so far `days` older."""
    replica.sql("UPDATE tdgl_replica.sync_log SET created_at = created_at - make_interval(days => %s)",
                (days,))
    replica.sql("UPDATE tdgl_replica.runs SET started_at = started_at - make_interval(days => %s), "
                "ended_at = ended_at - make_interval(days => %s)", (days, days))


def purge(replica, *args):
    return json.loads(replica.cli("purge", *args).stdout)


def entries(replica):
    return replica.sql("SELECT pk->>'id', status, coalesce(reason, '') FROM tdgl_replica.sync_entries "
                       "ORDER BY id, seq")


def test_purge_deletes_old_synced_and_skipped_entries_and_old_runs(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    assert pull(replica)["status"] == "Success"                     # initial sync: no entries
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1), (2, 'b', 'X', 2)")
    old_run = pull(replica)["run_id"]
    replica.cli("source", "set", "main", "--table", "customer", "--insert-enabled", "off")
    primary.sql("INSERT INTO customer VALUES (3, 'c', 'X', 3)")
    pull(replica)
    assert [e[1] for e in entries(replica)] == ["Synced", "Synced", "Skipped"]
    backdate(replica)
    replica.cli("source", "set", "main", "--table", "customer", "--insert-enabled", "on")
    primary.sql("INSERT INTO customer VALUES (4, 'd', 'X', 4)")
    new_run = pull(replica)["run_id"]
    out = purge(replica, "--log-retention", "14d")
    assert out["log_entries"] == 3 and out["runs"] == 3, out
    assert entries(replica) == [("4", "Synced", "")]
    assert replica.sql("SELECT id FROM tdgl_replica.runs ORDER BY id") == [(new_run,)]
    assert old_run < new_run
    assert replica.sql("SELECT id FROM customer ORDER BY id") == [(1,), (2,), (4,)]
    assert purge(replica)["log_entries"] == 0                       # nothing more is old


def test_purge_keeps_failed_entries_and_their_runs(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], replica_ddl=[CHECKED])
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1), (2, 'b', 'X', 2)")
    run = pull(replica)
    assert run["failed"] == 1 and run["synced"] == 1, run
    backdate(replica)
    out = purge(replica)
    assert out["log_entries"] == 1 and out["runs"] == 1, out        # the initial sync's run
    assert entries(replica) == [("1", "Failed", "")]
    assert replica.sql("SELECT id FROM tdgl_replica.runs") == [(run["run_id"],)]
    (lid,), = replica.sql("SELECT id FROM tdgl_replica.sync_entries")
    replica.serve()
    assert replica.api("GET", "/api/log?status=Failed").json()[0]["run_id"] == run["run_id"]
    replica.sql("ALTER TABLE customer DROP CONSTRAINT customer_amount_check")
    assert replica.api("POST", f"/api/log/{lid}/retry").status_code == 200
    assert replica.one("SELECT amount FROM customer WHERE id = 1") == -1


def test_purge_keeps_runs_still_running(replica):
    replica.sql("INSERT INTO tdgl_replica.runs (source, trigger, started_at) "
                "VALUES ('main', 'Manual', now() - interval '30 days')")
    assert purge(replica)["runs"] == 0
    assert replica.one("SELECT status FROM tdgl_replica.runs") == "Running"


def test_purge_keeps_the_entry_of_an_open_conflict_until_it_is_resolved(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    replica.sql("UPDATE customer SET name = 'local' WHERE id = 1")
    primary.sql("UPDATE customer SET name = 'primary' WHERE id = 1")
    assert pull(replica)["conflicts"] == 1
    backdate(replica)
    assert purge(replica)["log_entries"] == 1                       # the insert's entry
    (cid, _), = replica.sql("SELECT id, status FROM tdgl_replica.conflicts")
    assert [e[1:] for e in entries(replica)] == [("Skipped", "conflict: row edited locally")]
    replica.cli("resolve", str(cid), "keep-local")
    assert purge(replica)["log_entries"] == 1
    assert entries(replica) == []


def test_purge_keeps_the_later_entry_a_failed_copy_row_is_checked_against(primary, replica):
    # A row the initial sync could not apply is logged Failed without a key; a later change of
    # the row applied since must stop its retry from writing the old snapshot back.
    primary.sql(CUSTOMER)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1)")
    pair(primary, replica, [], ["customer"], replica_ddl=[CHECKED])
    assert pull(replica)["failed"] == 1
    replica.sql("ALTER TABLE customer DROP CONSTRAINT customer_amount_check")
    primary.sql("UPDATE customer SET amount = 5 WHERE id = 1")
    pull(replica)
    assert [e[1] for e in entries(replica)] == ["Failed", "Synced"]
    backdate(replica)
    assert purge(replica)["log_entries"] == 0
    (lid,), = replica.sql("SELECT id FROM tdgl_replica.sync_entries WHERE status = 'Failed'")
    replica.cli("retry", str(lid))
    assert replica.one("SELECT status FROM tdgl_replica.sync_entries WHERE id = %s", (lid,)) == "Skipped"
    assert replica.one("SELECT amount FROM customer WHERE id = 1") == 5


def test_purge_walks_past_its_first_batch(replica):
    # 25,000 old entries: three batches of 10,000 in primary-key order; recent ones stay
    replica.sql("INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, created_at) "
                "SELECT 'main', g, 't', jsonb_build_object('id', g), 'Update', "
                "CASE WHEN g % 2 = 0 THEN 'Synced' ELSE 'Skipped' END, "
                "now() - interval '30 days' FROM generate_series(1, 25000) g")
    replica.sql("INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status) "
                "SELECT 'main', g, 't', jsonb_build_object('id', g), 'Update', 'Synced' "
                "FROM generate_series(25001, 25010) g")
    assert purge(replica, "--log-retention", "1d")["log_entries"] == 25000
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") == 10


def test_purge_and_serve_refuse_bad_durations(replica):
    for args, env in [(("purge", "--log-retention", "0"), {}),
                      (("purge", "--log-retention", "2w"), {}),
                      (("purge",), {"TDGL_LOG_RETENTION": "soon"}),
                      (("purge", "--log-retention", "99999999d"), {}),
                      (("serve", "--purge-interval", "9223372036854775807"), {}),
                      (("serve", "--purge-interval", "-1"), {}),
                      (("serve", "--log-retention", "1x"), {}),
                      (("serve",), {"TDGL_PURGE_INTERVAL": "5 minutes"})]:
        p = replica.cli(*args, check=False, env=env)
        assert p.returncode == 2, (args, env, p.stderr)
        assert "expected a duration" in p.stderr and ("--log-retention" in p.stderr or
                                                       "--purge-interval" in p.stderr), p.stderr


def test_serve_purges_on_its_interval(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    backdate(replica)
    replica.serve("--purge-interval", "1s", "--log-retention", "1h")
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") == 0, timeout=20,
               what="the periodic purge")
    wait_until(lambda: "purge: deleted" in replica.server.log(), what="the purge's log line")
    m = replica.api("GET", "/metrics").text
    assert "tdgl_replica_purged_log_entries_total 1" in m, m


def test_serve_with_purge_interval_zero_never_purges(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    replica.serve("--purge-interval", "0")
    replica.wait_rows("SELECT id FROM customer", [(1,)], timeout=20)
    assert "purge:" not in replica.server.log()


def test_serve_survives_a_failing_purge(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], "--poll-interval", "3600")
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', 1)")
    pull(replica)
    backdate(replica)
    replica.sql("ALTER FUNCTION tdgl_replica.purge_log_batch(timestamptz, bigint, int) RENAME TO gone")
    replica.serve("--purge-interval", "1s", "--log-retention", "1h")
    wait_until(lambda: "purge: failed" in replica.server.log(), what="a failed purge logged")
    replica.sql("ALTER FUNCTION tdgl_replica.gone(timestamptz, bigint, int) RENAME TO purge_log_batch")
    wait_until(lambda: replica.one("SELECT count(*) FROM tdgl_replica.sync_entries") == 0, timeout=20,
               what="a later purge")
    assert requests.get(replica.url + "/health", timeout=5).status_code == 200

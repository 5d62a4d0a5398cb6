"""The sync log keeps what one apply statement synced as ONE row (replica schema 8: change_ids,
pks, ops side by side), Failed and Skipped outcomes one row per change; every question the log
answered per change is still answered: a key's Synced change on the log pages and in
GET /api/log and `tdgl-replica log`, a run's entries, retention, retry superseding."""
import json

from harness import REPLICA_SCHEMA

from test_replica import CUSTOMER, pair, pull  # noqa: F401 - also patches harness

CHECKED = ("CREATE TABLE customer (id int PRIMARY KEY, name text, company text, "
           "amount numeric(12,2) CHECK (amount >= 0))")


def synced_statement(primary, replica, n=40):
    """n rows inserted, then all updated by one statement (one page); returns the update
    pull's summary and the primary's change id of each key's update."""
    pair(primary, replica, CUSTOMER, ["customer"])
    pull(replica)
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', g FROM generate_series(1, %s) g", (n,))
    pull(replica)
    primary.sql("UPDATE customer SET amount = amount + 1")
    r = pull(replica)
    assert r["synced"] == n and r["pages"] == 1, r
    ids = dict(primary.sql("SELECT (pk->>'id')::int, id FROM tdgl.change_log WHERE op = 'Update'"))
    return r, ids


def test_a_statement_s_synced_changes_are_one_log_row_and_each_change_is_still_listed(
        primary, replica):
    r, ids = synced_statement(primary, replica)
    rows = replica.sql("SELECT entries, cardinality(change_ids), op, ops, pk, change_id "
                       "FROM tdgl_replica.sync_log WHERE run_id = %s", (r["run_id"],))
    assert rows == [(40, 40, "Update", None, None, None)], rows
    entries = replica.sql("SELECT (pk->>'id')::int, change_id, op, status FROM "
                          "tdgl_replica.sync_entries WHERE run_id = %s ORDER BY seq",
                          (r["run_id"],))
    assert entries == [(k, ids[k], "Update", "Synced") for k in sorted(ids)], entries
    # the run's entries over the API, one per change
    replica.serve()
    api = replica.api("GET", f"/api/log?run_id={r['run_id']}&limit=1000").json()
    assert sorted((e["pk"]["id"], e["change_id"]) for e in api) == sorted(ids.items())
    assert all(e["status"] == "Synced" and e["op"] == "Update" for e in api)
    # and in `tdgl-replica log`
    out = replica.cli("log", "--status", "Synced").stdout
    assert f"\t{ids[7]}\tcustomer\tUpdate\tSynced\t" in out and '{"id": 7}' in out, out


def test_log_page_finds_a_key_synced_by_a_statement_and_never_splits_its_row(primary, replica):
    r, ids = synced_statement(primary, replica)
    replica.serve()
    for key in ("7", '{"id": 7}'):
        page = replica.api("GET", "/api/log/page",
                           params={"key": key, "status": "Synced"}).json()["entries"]
        hit = [e for e in page if e["run_id"] == r["run_id"]]
        assert [(e["pk"], e["change_id"], e["op"]) for e in hit] == [({"id": 7}, ids[7], "Update")]
    everything = replica.api("GET", "/api/log/page?limit=1000").json()
    assert everything["next_before"] is None
    pairs = [(e["id"], e["change_id"]) for e in everything["entries"]]
    assert len(pairs) == 80 and len(set(pairs)) == 80      # the inserts' and updates' rows
    paged, sizes, before = [], [], ""
    while True:
        page = replica.api("GET", "/api/log/page?limit=3" + before).json()
        paged += [(e["id"], e["change_id"]) for e in page["entries"]]
        sizes.append(len(page["entries"]))
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    # a page ends on a log row: the 40 entries of one statement come together
    assert paged == pairs and [n for n in sizes if n] == [40, 40], sizes
    # newest first: within a statement's row, the last change first
    newest = everything["entries"][:40]
    assert [e["change_id"] for e in newest] == sorted(ids.values(), reverse=True)


def test_log_page_and_entries_still_read_rows_written_before_schema_8(replica):
    replica.sql("INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status) "
                "VALUES ('main', 5, 't', '{\"id\": 3}', 'Create', 'Synced')")
    assert replica.sql("SELECT change_id, pk, op, seq FROM tdgl_replica.sync_entries") == \
        [(5, {"id": 3}, "Create", 1)]
    replica.serve()
    page = replica.api("GET", "/api/log/page", params={"key": "3"}).json()["entries"]
    assert [(e["change_id"], e["pk"], e["status"]) for e in page] == [(5, {"id": 3}, "Synced")]


def old_row(replica, status, pks=None, pk=None, change=None):
    """An entry of 30 days ago: a statement's Synced row (pks) or one change's row (pk)."""
    return replica.one(
        "INSERT INTO tdgl_replica.sync_log (source, tbl, pk, op, status, change_ids, pks, "
        "entries, change, next_retry_at, created_at) SELECT 'main', 't', %s::jsonb, 'Update', %s, "
        "CASE WHEN %s::jsonb[] IS NOT NULL THEN ARRAY(SELECT generate_series(1, "
        "cardinality(%s::jsonb[])))::bigint[] END, %s::jsonb[], "
        "coalesce(cardinality(%s::jsonb[]), 1), %s::json, CASE WHEN %s = 'Failed' THEN now() END, "
        "now() - interval '30 days' RETURNING id",
        (pk, status, pks, pks, pks, pks, change, status))


def test_purge_counts_a_statement_row_s_entries_and_keeps_one_a_failed_change_needs(replica):
    keys = lambda *ids: [json.dumps({"id": i}) for i in ids]  # noqa: E731
    old_row(replica, "Failed", pk='{"id": 1}')
    old_row(replica, "Failed", change='{"row": {"id": 9, "amount": -1}}')   # key-less (copy)
    gone = old_row(replica, "Synced", pks=keys(2, 3, 4))
    kept = old_row(replica, "Synced", pks=keys(5, 1, 6))      # holds the Failed key 1
    kept2 = old_row(replica, "Synced", pks=keys(8, 9))        # holds the key-less one's row
    out = json.loads(replica.cli("purge", "--log-retention", "1d").stdout)
    assert out["log_entries"] == 3, out                       # entries, not rows
    left = [i for (i,) in replica.sql("SELECT id FROM tdgl_replica.sync_log "
                                      "WHERE status = 'Synced' ORDER BY id")]
    assert left == [kept, kept2] and gone not in left


def test_retry_is_superseded_by_a_later_statement_row_holding_its_key(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"], replica_ddl=[CHECKED])
    pull(replica)
    primary.sql("INSERT INTO customer VALUES (1, 'a', 'X', -1)")
    pull(replica)
    (lid,), = replica.sql("SELECT id FROM tdgl_replica.sync_log WHERE status = 'Failed'")
    # a later statement synced key 1 among others (as another source's apply could have)
    replica.sql("INSERT INTO tdgl_replica.sync_log (source, tbl, op, status, change_ids, pks, "
                "entries) VALUES ('main', 'customer', 'Update', 'Synced', '{100, 101}', "
                "ARRAY['{\"id\": 2}', '{\"id\": 1}']::jsonb[], 2)")
    replica.cli("retry", str(lid))
    assert replica.sql("SELECT status, reason FROM tdgl_replica.sync_log WHERE id = %s",
                       (lid,)) == [("Skipped", "superseded by a later change")]
    assert replica.one("SELECT count(*) FROM customer") == 0


def test_a_version_7_log_is_upgraded_and_its_rows_read_as_before(primary, replica):
    pair(primary, replica, CUSTOMER, ["customer"])
    pull(replica)
    # what a version-7 log looked like: no statement rows, one row per Synced change
    replica.sql("DROP VIEW tdgl_replica.sync_entries")
    replica.sql("ALTER TABLE tdgl_replica.sync_log DROP COLUMN change_ids, DROP COLUMN pks, "
                "DROP COLUMN ops, DROP COLUMN entries")
    replica.sql("DELETE FROM tdgl_replica.schema_version WHERE version > 7")
    replica.sql("INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status) "
                "VALUES ('main', 1, 'customer', '{\"id\": 1}', 'Create', 'Synced')")
    replica.migrate()
    assert replica.one("SELECT max(version) FROM tdgl_replica.schema_version") == REPLICA_SCHEMA
    primary.sql("INSERT INTO customer SELECT g, 'n', 'X', g FROM generate_series(2, 4) g")
    pull(replica)
    assert replica.sql("SELECT entries, change_id IS NULL FROM tdgl_replica.sync_log "
                       "ORDER BY id") == [(1, False), (3, True)]
    assert [k for (k,) in replica.sql("SELECT (pk->>'id')::int FROM tdgl_replica.sync_entries "
                                      "ORDER BY id, seq")] == [1, 2, 3, 4]

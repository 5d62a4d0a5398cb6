"""Primary: capture and the visibility cursor (GET /api/changes, /api/snapshot).

The guarantees tested here: every operation is captured with the right snapshot; no committed
change is ever skipped or served twice; per row, changes are served in commit order; a cursor
replays the same answer. Helpers here are shared by the other test_primary_* files."""
import base64
import json
import os
import threading

import psycopg2
import pytest

from harness import wait_until




# ---- helpers shared by test_primary_*.py ----

def make_token(text):
    """A cursor token from its plain text (base64url, no padding)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def token_text(token):
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def fetch(site, cursor=None, expect=200, **params):
    """One /api/changes call: (changes, cursor, more)."""
    if cursor:
        params["cursor"] = cursor
    r = site.get("/api/changes", site.key, site.secret, **params)
    assert r.status_code == expect, r.text
    if expect != 200:
        return r
    j = r.json()
    return j["changes"], j["cursor"], j["more"]


def drain(site, cursor=None, limit=100, **params):
    """Reads pages until the primary says there is nothing more; returns (changes, cursor)."""
    out = []
    for _ in range(100000):
        ch, cursor, more = fetch(site, cursor, limit=limit, **params)
        assert len(ch) <= limit
        out += ch
        if not more:
            return out, cursor
    raise AssertionError("drain did not end")


def snapshot(site):
    r = site.get("/api/snapshot", site.key, site.secret)
    assert r.status_code == 200, r.text
    return r.json()["cursor"]


def serve_with_key(primary, *args, env=None):
    primary.serve(*args, env=env)
    primary.key, primary.secret = primary.keygen()
    return primary


@pytest.fixture
def site(primary):
    """A serving primary with a tracked `customer` table (with docstatus) and an API key."""
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text,"
                " docstatus int NOT NULL DEFAULT 0)")
    primary.track("customer")
    return serve_with_key(primary)


@pytest.fixture(params=["default-window", "window-5"])
def csite(request, primary):
    """Like `site`, once with the default page window and once with a 5-id window, so
    pages that end at a window boundary (short pages with more=true) are exercised too."""
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text,"
                " docstatus int NOT NULL DEFAULT 0)")
    primary.track("customer")
    args = ["--page-window", "5"] if request.param == "window-5" else []
    return serve_with_key(primary, *args)


def log_ids(site):
    return [r[0] for r in site.sql("SELECT id FROM tdgl.change_log ORDER BY id")]


# ---- capture ----

def test_each_operation_captured_with_right_snapshot(site):
    site.sql("INSERT INTO customer VALUES (1, 'Ann', 0)")
    site.sql("UPDATE customer SET name = 'Anne' WHERE id = 1")
    site.sql("UPDATE customer SET docstatus = 1 WHERE id = 1")
    site.sql("UPDATE customer SET name = 'Anna' WHERE id = 1")
    site.sql("UPDATE customer SET docstatus = 2 WHERE id = 1")
    site.sql("DELETE FROM customer WHERE id = 1")
    changes, _ = drain(site)
    got = [(c["op"], c["table"], c["pk"], c["row"]) for c in changes]
    row = {"id": 1, "name": "Ann", "docstatus": 0}
    assert got == [
        ("Create", "customer", {"id": 1}, row),
        ("Update", "customer", {"id": 1}, dict(row, name="Anne")),
        ("Submit", "customer", {"id": 1}, dict(row, name="Anne", docstatus=1)),
        ("Update After Submit", "customer", {"id": 1}, dict(row, name="Anna", docstatus=1)),
        ("Cancel", "customer", {"id": 1}, dict(row, name="Anna", docstatus=2)),
        ("Delete", "customer", {"id": 1}, dict(row, name="Anna", docstatus=2)),
    ]
    assert all(c["old_pk"] is None and c["changed_at"] for c in changes)
    assert [c["id"] for c in changes] == sorted(c["id"] for c in changes)


def test_row_snapshot_is_exact_text(site):
    site.sql("CREATE TABLE m (id int PRIMARY KEY, amount numeric(12,3), f float8, g float8,"
             " b bytea, ts timestamptz, j json)")
    site.track("m")
    site.sql("INSERT INTO m VALUES (1, 1.500, '-0', 'NaN', '\\x00ff', '2024-02-29 12:00:00.123456+00',"
             " '{\"a\" :  [1, 2.50]}')")
    expected = site.one("SELECT row_to_json(m)::text FROM m")
    r = site.get("/api/changes", site.key, site.secret, tables="m")
    assert r.status_code == 200
    assert '"row":' + expected in r.text
    assert '"amount":1.500' in expected and '"f":-0' in expected


def test_rename_carries_old_and_new_key(site):
    site.sql("INSERT INTO customer VALUES (1, 'Ann', 0)")
    site.sql("UPDATE customer SET id = 2 WHERE id = 1")
    changes, _ = drain(site)
    assert changes[-1]["op"] == "Rename"
    assert changes[-1]["pk"] == {"id": 2}
    assert changes[-1]["old_pk"] == {"id": 1}
    assert changes[-1]["row"]["id"] == 2


def test_noop_update_not_logged(site):
    site.sql("CREATE TABLE j (id int PRIMARY KEY, doc json, n numeric)")
    site.track("j")
    site.sql("INSERT INTO customer VALUES (1, 'Ann', 0)")
    site.sql("INSERT INTO j VALUES (1, '{\"a\": 1}', 1.0)")
    before = len(log_ids(site))
    site.sql("UPDATE customer SET name = 'Ann' WHERE id = 1")
    site.sql("UPDATE j SET doc = doc, n = n")
    assert len(log_ids(site)) == before
    # a change that only alters the text of a value (1.0 -> 1.00) is a real change
    site.sql("UPDATE j SET n = 1.00")
    assert len(log_ids(site)) == before + 1


def test_apply_session_change_not_logged(site):
    conn = site.cluster.connect(site.dbname, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET tdgl.applying = on")
        cur.execute("INSERT INTO customer VALUES (5, 'from replica', 0)")
        cur.execute("UPDATE customer SET name = 'x' WHERE id = 5")
        cur.execute("DELETE FROM customer WHERE id = 5")
    conn.commit()
    conn.close()
    assert log_ids(site) == []
    site.sql("INSERT INTO customer VALUES (6, 'local', 0)")
    assert len(log_ids(site)) == 1


def test_composite_key_captured(site):
    site.sql("CREATE TABLE line (doc text, line int, qty int, PRIMARY KEY (doc, line))")
    site.track("line")
    site.sql("INSERT INTO line VALUES ('SO-1', 1, 5)")
    site.sql("UPDATE line SET line = 2 WHERE doc = 'SO-1'")
    site.sql("DELETE FROM line")
    changes, _ = drain(site, tables="line")
    assert [(c["op"], c["pk"], c["old_pk"]) for c in changes] == [
        ("Create", {"doc": "SO-1", "line": 1}, None),
        ("Rename", {"doc": "SO-1", "line": 2}, {"doc": "SO-1", "line": 1}),
        ("Delete", {"doc": "SO-1", "line": 2}, None),
    ]


def test_truncate_of_tracked_table_is_refused(site):
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    with pytest.raises(psycopg2.Error, match="TRUNCATE would not reach replicas"):
        site.sql("TRUNCATE customer")
    assert site.one("SELECT count(*) FROM customer") == 1
    site.cli("untrack", "customer")
    site.sql("TRUNCATE customer")


def test_schema_qualified_table_name(site):
    site.sql("CREATE SCHEMA sales; CREATE TABLE sales.invoice (id int PRIMARY KEY)")
    site.track("sales.invoice")
    site.sql("INSERT INTO sales.invoice VALUES (1)")
    changes, _ = drain(site, tables="sales.invoice")
    assert [c["table"] for c in changes] == ["sales.invoice"]


# ---- the cursor ----

def test_pages_stable_and_cursor_replays(csite):
    csite.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, 25) g")
    cursor = None
    seen = []
    for _ in range(20):
        first = fetch(csite, cursor, limit=4)
        again = fetch(csite, cursor, limit=4)
        assert first[0] == again[0]      # same cursor, same page
        if cursor and token_text(cursor).startswith("v1.1."):
            assert first == again        # inside a batch: same next cursor too
        ch, nxt, more = first
        seen += [c["id"] for c in ch]
        cursor = nxt
        if not more:
            break
    assert seen == log_ids(csite)
    # replaying an old cursor after more commits still gives its original page
    ch0, c1, _ = fetch(csite, None, limit=4)
    csite.sql("INSERT INTO customer VALUES (100, 'late', 0)")
    assert fetch(csite, None, limit=4)[0] == ch0
    assert fetch(csite, c1, limit=4)[0] == fetch(csite, c1, limit=4)[0]


def test_commit_out_of_id_order_is_not_lost(csite):
    _, cursor = drain(csite)
    t1 = csite.cluster.connect(csite.dbname, autocommit=False)
    t2 = csite.cluster.connect(csite.dbname, autocommit=False)
    try:
        t1.cursor().execute("INSERT INTO customer VALUES (1, 'T1', 0)")   # takes the smaller id
        t2.cursor().execute("INSERT INTO customer VALUES (2, 'T2', 0)")
        t2.commit()
        changes, cursor = drain(csite, cursor)
        assert [c["pk"] for c in changes] == [{"id": 2}]
        t1.commit()
        changes, cursor = drain(csite, cursor)
        assert [c["pk"] for c in changes] == [{"id": 1}]
        assert changes[0]["id"] < log_ids(csite)[-1]    # it really committed out of id order
        assert drain(csite, cursor)[0] == []
    finally:
        t1.close()
        t2.close()


def test_long_transaction_loses_nothing(csite):
    csite.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, 20) g")
    _, cursor = drain(csite)
    start = log_ids(csite)[-1]
    served = []
    long_tx = csite.cluster.connect(csite.dbname, autocommit=False)
    blocked = csite.cluster.connect(csite.dbname, autocommit=False)
    try:
        lc = long_tx.cursor()
        lc.execute("UPDATE customer SET name = 'long' WHERE id = 1")
        lc.execute("INSERT INTO customer VALUES (1000, 'long', 0)")
        # a writer of the same row waits for the long transaction, then commits after it
        waiter = threading.Thread(target=lambda: (
            blocked.cursor().execute("UPDATE customer SET name = 'after long' WHERE id = 1"),
            blocked.commit()))
        waiter.start()
        for i in range(60):
            csite.sql("UPDATE customer SET name = %s WHERE id = %s", (f"v{i}", 2 + i % 19))
            csite.sql("INSERT INTO customer VALUES (%s, 'n', 0)", (2000 + i,))
            if i % 7 == 0:
                ch, cursor = drain(csite, cursor, limit=3)
                served += ch
        ch, cursor = drain(csite, cursor, limit=3)
        served += ch
        assert not any(c["row"]["name"] in ("long", "after long") for c in served)
        long_tx.commit()
        waiter.join(10)
        assert not waiter.is_alive()
        ch, cursor = drain(csite, cursor, limit=3)
        served += ch
    finally:
        long_tx.close()
        blocked.close()
    ids = [c["id"] for c in served]
    assert sorted(ids) == [i for i in log_ids(csite) if i > start]    # every change exactly once
    per_row = {}
    for c in served:
        per_row.setdefault(c["pk"]["id"], []).append(c["id"])
    for pk, row_ids in per_row.items():
        assert row_ids == sorted(row_ids), f"row {pk} served out of commit order"
    names_1 = [c["row"]["name"] for c in served if c["pk"] == {"id": 1}]
    assert names_1 == ["long", "after long"]
    assert csite.one("SELECT name FROM customer WHERE id = 1") == "after long"


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 99, 100, 101, 250, 499, 500])
def test_many_changes_in_one_transaction_cross_pages(csite, limit):
    n = 600 if limit >= 7 else 120
    csite.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, %s) g", (n,))
    changes, cursor = drain(csite, limit=limit)
    assert [c["id"] for c in changes] == log_ids(csite)
    assert len({c["pk"]["id"] for c in changes}) == n
    assert drain(csite, cursor, limit=limit)[0] == []


def test_pages_of_an_unanalyzed_large_transaction_are_ordered_index_scans(primary):
    """Before autovacuum has analyzed the change log after a large transaction, the planner
    has no statistics for it; a page must still be an ordered index scan of its own rows, not
    a bitmap scan of the whole window plus a sort (on every page). Plans are read from
    auto_explain in the server log (on in this database only)."""
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)")
    primary.track("customer")
    primary.sql("ALTER TABLE tdgl.change_log SET (autovacuum_enabled = false)")
    for setting, value in [("session_preload_libraries", "auto_explain"),
                           ("auto_explain.log_min_duration", "0")]:
        primary.sql(f'ALTER DATABASE "{primary.dbname}" SET {setting} = \'{value}\'')
    start = os.path.getsize(primary.cluster.logfile)
    serve_with_key(primary)
    cursor = snapshot(primary)
    primary.sql("INSERT INTO customer SELECT g, 'c' || g FROM generate_series(1, 5000) g")
    changes, _ = drain(primary, cursor, limit=100)
    assert len(changes) == 5000
    with open(primary.cluster.logfile, errors="replace") as f:
        f.seek(start)
        log = f.read()
    assert "Bitmap Heap Scan on change_log" not in log
    assert "Index Scan using change_log_pkey on change_log" in log


def test_tables_filter_returns_only_those_tables(csite):
    csite.sql("CREATE TABLE other (id int PRIMARY KEY)")
    csite.track("other")
    for i in range(10):
        csite.sql("INSERT INTO customer VALUES (%s, 'c', 0)", (i,))
        csite.sql("INSERT INTO other VALUES (%s)", (i,))
    changes, cursor = drain(csite, limit=3, tables="other")
    assert [c["table"] for c in changes] == ["other"] * 10
    both, _ = drain(csite, limit=3, tables="customer,other")
    assert len(both) == 20


def test_snapshot_cursor_replays_changes_made_after_it(csite):
    csite.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, 5) g")
    start = snapshot(csite)
    csite.sql("UPDATE customer SET name = 'changed' WHERE id = 3")
    changes, _ = drain(csite, start)
    assert [(c["op"], c["pk"]) for c in changes] == [("Update", {"id": 3})]


def test_empty_log_gives_a_closed_cursor_and_no_more(site):
    changes, cursor, more = fetch(site)
    assert changes == [] and more is False
    assert token_text(cursor).startswith("v1.0.")
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    changes, cursor2, more = fetch(site, cursor)
    assert [c["pk"] for c in changes] == [{"id": 1}]


def test_aborted_transaction_never_served(csite):
    conn = csite.cluster.connect(csite.dbname, autocommit=False)
    conn.cursor().execute("INSERT INTO customer SELECT g, 'rolled back', 0"
                          " FROM generate_series(1000, 1099) g")     # a gap of 100 ids
    conn.rollback()
    conn.close()
    csite.sql("INSERT INTO customer VALUES (2, 'kept', 0)")
    changes, _ = drain(csite)
    assert [c["pk"] for c in changes] == [{"id": 2}]


def test_concurrent_writers_lose_nothing(csite):
    """Many writers commit in random order while a reader pages with small limits."""
    csite.sql("INSERT INTO customer SELECT g, 'c', 0 FROM generate_series(1, 10) g")
    _, cursor = drain(csite)
    start = log_ids(csite)[-1]
    stop = threading.Event()

    def writer(w):
        conn = csite.cluster.connect(csite.dbname, autocommit=False)
        cur = conn.cursor()
        i = 0
        while not stop.is_set() and i < 150:
            cur.execute("UPDATE customer SET name = %s WHERE id = %s", (f"w{w}-{i}", 1 + (i + w) % 10))
            cur.execute("INSERT INTO customer VALUES (%s, 'n', 0)", (10000 * (w + 1) + i,))
            conn.commit()
            i += 1
        conn.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    served = []
    while any(t.is_alive() for t in threads):
        ch, cursor = drain(csite, cursor, limit=5)
        served += ch
    for t in threads:
        t.join()
    ch, cursor = drain(csite, cursor, limit=5)
    served += ch
    assert sorted(c["id"] for c in served) == [i for i in log_ids(csite) if i > start]
    per_row = {}
    for c in served:
        per_row.setdefault(c["pk"]["id"], []).append(c["id"])
    assert all(v == sorted(v) for v in per_row.values())
    last = {c["pk"]["id"]: c["row"]["name"] for c in served}
    for pk, name in csite.sql("SELECT id, name FROM customer WHERE id <= 10"):
        assert last.get(pk, name) == name

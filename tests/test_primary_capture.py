"""Primary capture beyond one row per statement: multi-row statements (INSERT is captured per
statement through a transition table), statements that touch one key twice, partitions,
tables with their own AFTER INSERT triggers, and the regeneration of triggers by migrate.

The ordering tests replay the log in id order the way a replica applies it, strictly: a
Create of a key that exists, or an Update/Delete/Rename of one that does not, fails. The
replayed rows must equal the table's rows."""
import io
import json

import psycopg2
import pytest

OPS_KEEP = {"Create", "Update", "Submit", "Cancel", "Update After Submit"}


def changes(site):
    return [(op, json.loads(pk), json.loads(old_pk) if old_pk else None, row)
            for op, pk, old_pk, row in site.sql(
                "SELECT op, pk::text, old_pk::text, row::text FROM tdgl.change_log ORDER BY id")]


def key(pk):
    return json.dumps(pk, sort_keys=True)


def replay(site):
    """Rows (exact text by key) after applying every change in id order, strictly."""
    rows = {}
    for op, pk, old_pk, row in changes(site):
        if op == "Create":
            assert key(pk) not in rows, f"Create of existing {pk}"
            rows[key(pk)] = row
        elif op == "Rename":
            assert key(old_pk) in rows, f"Rename of missing {old_pk}"
            assert key(pk) not in rows, f"Rename onto existing {pk}"
            del rows[key(old_pk)]
            rows[key(pk)] = row
        elif op == "Delete":
            assert key(pk) in rows, f"Delete of missing {pk}"
            del rows[key(pk)]
        else:
            assert op in OPS_KEEP, op
            assert key(pk) in rows, f"{op} of missing {pk}"
            rows[key(pk)] = row
    return rows


def table_rows(site, table, pkcols=("id",)):
    out = {}
    for (text,) in site.sql(f"SELECT row_to_json(t)::text FROM {table} t"):
        r = json.loads(text)
        out[key({c: r[c] for c in pkcols})] = text
    return out


@pytest.fixture
def t(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    primary.track("t")
    return primary


def test_multi_row_insert_logs_one_create_per_row(t):
    t.sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g")
    got = changes(t)
    assert [c[0] for c in got] == ["Create"] * 500
    assert replay(t) == table_rows(t, "t")


def test_upsert_logs_each_inserted_and_updated_row_once(t):
    t.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    t.sql("INSERT INTO t VALUES (2, 'B'), (3, 'c'), (1, 'a') ON CONFLICT (id) DO UPDATE"
          " SET v = EXCLUDED.v")
    ops = [(c[0], c[1]["id"]) for c in changes(t)[2:]]
    # id 1's update is a no-op (not logged)
    assert sorted(ops) == [("Create", 3), ("Update", 2)]
    assert replay(t) == table_rows(t, "t")


def test_upsert_that_renames_a_key_away_and_inserts_it_again(t):
    t.sql("INSERT INTO t VALUES (1, 'old')")
    # the first proposal renames 1 -> 7, the second then inserts a new 1
    t.sql("INSERT INTO t VALUES (1, 'x'), (1, 'new') ON CONFLICT (id) DO UPDATE SET id = 7")
    assert [(c[0], c[1]["id"]) for c in changes(t)] == [("Create", 1), ("Rename", 7), ("Create", 1)]
    assert replay(t) == table_rows(t, "t")


def test_delete_and_reinsert_of_a_key_in_one_statement_logs_the_delete_first(t):
    t.sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g")
    # the INSERT ends (LIMIT) before the DELETE sub-statement has run to its end
    t.sql("WITH d AS (DELETE FROM t WHERE id IN (1, 2, 3) RETURNING id)"
          " INSERT INTO t SELECT id, 'again' FROM (SELECT id FROM d LIMIT 1) s")
    ops = [(c[0], c[1]["id"]) for c in changes(t)[3:]]
    again = next(i for i, (op, k) in enumerate(ops) if op == "Create")
    deleted_first = ops[:again]
    assert ("Delete", ops[again][1]) in deleted_first
    assert replay(t) == table_rows(t, "t")
    assert t.sql("SELECT v FROM t") == [("again",)]


def test_rename_away_and_insert_of_the_key_in_one_statement(t):
    t.sql("INSERT INTO t VALUES (1, 'old')")
    t.sql("WITH u AS (UPDATE t SET id = 10 WHERE id = 1 RETURNING id)"
          " INSERT INTO t SELECT 1, 'new' FROM u")
    assert [(c[0], c[1]["id"]) for c in changes(t)] == [("Create", 1), ("Rename", 10), ("Create", 1)]
    assert replay(t) == table_rows(t, "t")


def test_copy_into_a_tracked_table_is_captured(t):
    conn = t.cluster.connect(t.dbname)
    with conn.cursor() as cur:
        cur.copy_expert("COPY t FROM STDIN", io.StringIO("1\tone\n2\ttwo\n"))
    conn.close()
    assert [c[0] for c in changes(t)] == ["Create", "Create"]
    assert replay(t) == table_rows(t, "t")


def test_multi_row_insert_snapshots_are_exact_text_with_dropped_and_odd_columns(primary):
    # columns named like the transition table's alias, the log's columns and a keyword;
    # a dropped column in the middle
    primary.sql('CREATE TABLE o (id int PRIMARY KEY, gone int, n numeric(8,3), "row" text,'
                ' "select" float8, ts timestamptz, "Mixed Case" json)')
    primary.sql("ALTER TABLE o DROP COLUMN gone")
    primary.track("o")
    primary.sql("INSERT INTO o VALUES (1, 1.500, 'r', '-0', '2024-02-29 12:00:00.5+00',"
                " '{\"a\" :  1}'), (2, NULL, NULL, 'NaN', NULL, 'null')")
    assert replay(primary) == table_rows(primary, "o")
    assert '"n":1.500' in replay(primary)[key({"id": 1})]


def test_partitioned_table_captures_rows_inserted_through_parent_and_into_a_partition(primary):
    primary.sql("CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)")
    primary.sql("CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100)")
    primary.track("p")
    primary.sql("CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200)")
    primary.sql("INSERT INTO p VALUES (1, 'a'), (150, 'b')")
    primary.sql("INSERT INTO p1 VALUES (2, 'direct')")
    primary.sql("INSERT INTO p2 VALUES (151, 'direct')")
    primary.sql("UPDATE p SET v = 'x' WHERE id = 1")
    primary.sql("DELETE FROM p2 WHERE id = 150")
    assert sorted((c[0], c[1]["id"]) for c in changes(primary)) == [
        ("Create", 1), ("Create", 2), ("Create", 150), ("Create", 151), ("Delete", 150),
        ("Update", 1)]
    assert replay(primary) == table_rows(primary, "p")


def test_tracked_partition_captures_rows_routed_through_its_parent(primary):
    primary.sql("CREATE TABLE q (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)")
    primary.sql("CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (100)")
    primary.track("q1")
    primary.sql("INSERT INTO q VALUES (1, 'routed')")
    primary.sql("INSERT INTO q1 VALUES (2, 'direct')")
    assert [(c[0], c[1]["id"]) for c in changes(primary)] == [("Create", 1), ("Create", 2)]


def test_table_with_its_own_after_insert_trigger_logs_create_before_its_update(primary):
    # an AFTER INSERT trigger (sorting after tdgl's) that changes the row just inserted: the
    # Create must be logged before that Update, so inserts are captured per row here
    primary.sql("CREATE TABLE a (id int PRIMARY KEY, v text)")
    primary.sql("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN UPDATE a SET v = v || '+' WHERE id = NEW.id; RETURN NULL; END$$")
    primary.sql("CREATE TRIGGER zz_touch AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION touch()")
    primary.track("a")
    primary.sql("INSERT INTO a VALUES (1, 'x'), (2, 'y')")
    got = [(c[0], c[1]["id"]) for c in changes(primary)]
    assert sorted(got) == [("Create", 1), ("Create", 2), ("Update", 1), ("Update", 2)]
    assert replay(primary) == table_rows(primary, "a")


def test_apply_session_multi_row_insert_not_logged(t):
    conn = t.cluster.connect(t.dbname, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET LOCAL tdgl.applying = on")
        cur.execute("INSERT INTO t SELECT g, 'r' FROM generate_series(1, 10) g")
    conn.commit()
    conn.close()
    assert changes(t) == []


def test_migrate_regenerates_the_triggers_of_tracked_tables(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    primary.sql("CREATE TABLE gone (id int PRIMARY KEY)")
    primary.track("t")
    primary.track("gone")
    primary.sql("DROP TABLE gone")
    # a version-2 database: one trigger, tdgl_capture, calling tdgl.capture_<oid>()
    fname = primary.one("SELECT func_name FROM tdgl.tracked_tables WHERE name = 't'")
    primary.sql("SELECT tdgl.capture_drop('t'::regclass, %s)", (fname,))
    primary.sql(f'CREATE FUNCTION tdgl."{fname}"() RETURNS trigger LANGUAGE plpgsql AS'
                " $$BEGIN INSERT INTO tdgl.change_log (tbl, op, pk, row)"
                " VALUES ('t', 'Old', '{}', '{}'); RETURN NULL; END$$")
    primary.sql("CREATE TRIGGER tdgl_capture AFTER INSERT OR UPDATE OR DELETE ON t"
                f' FOR EACH ROW EXECUTE FUNCTION tdgl."{fname}"()')
    primary.sql("UPDATE tdgl.schema_version SET version = 2")
    primary.migrate()
    assert primary.sql("SELECT tgname FROM pg_trigger WHERE tgrelid = 't'::regclass"
                       " ORDER BY 1") == [("tdgl_capture_delete",), ("tdgl_capture_insert",),
                                          ("tdgl_capture_update",), ("tdgl_no_truncate",)]
    assert primary.one("SELECT to_regproc(%s)", ("tdgl." + fname,)) is None
    primary.sql("INSERT INTO t VALUES (1, 'a')")
    assert [c[0] for c in changes(primary)] == ["Create"]
    line = [x for x in primary.cli("tables").stdout.splitlines() if x.startswith("t ")][0]
    assert line.split()[-1] == "ok"


def test_truncate_still_refused_after_regeneration(t):
    t.sql("INSERT INTO t VALUES (1, 'a')")
    t.track("t")
    with pytest.raises(psycopg2.Error, match="TRUNCATE would not reach replicas"):
        t.sql("TRUNCATE t")


def test_tables_shows_a_table_that_needs_track_again(t):
    def status():
        line = [x for x in t.cli("tables").stdout.splitlines() if x.startswith("t ")][0]
        return line.split(None, 2)[-1].strip()
    assert status() == "ok"
    t.sql("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$")
    t.sql("CREATE TRIGGER mine AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION noop()")
    assert status() == "STALE (run track again)"
    t.track("t")
    assert status() == "ok"
    t.sql("DROP TRIGGER tdgl_capture_update ON t")
    assert status() == "MISSING"

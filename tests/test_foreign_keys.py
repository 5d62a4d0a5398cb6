"""Foreign keys on the replica (issue 13): the initial sync and the stream never fail a change
the primary accepted, with plain, DEFERRABLE, cascading, self-referencing and cyclic keys;
with the replica role (the apply session's session_replication_role) and without it (the
fallback: tables copied parents first, pages in the primary's order). A page of transactions
touching several tables is applied table by table."""
import json

from test_replica import pair, pull, rows_md5

# Alphabetical order (the order tables are listed in) is children first: a copy in that
# order is refused by every key.
FK_DDL = [
    # references itself; a key change cascades to the rows below it
    "CREATE TABLE orders (id int PRIMARY KEY, parent_id int REFERENCES orders "
    "ON UPDATE CASCADE ON DELETE SET NULL, note text)",
    "CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders "
    "ON DELETE CASCADE ON UPDATE CASCADE, qty int)",
    "CREATE TABLE entries (id int PRIMARY KEY, line_id int REFERENCES lines ON DELETE CASCADE "
    "DEFERRABLE INITIALLY DEFERRED, amount numeric)",
    # a cycle: each side needs the other
    "CREATE TABLE a_side (id int PRIMARY KEY, b_id int NOT NULL)",
    "CREATE TABLE b_side (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a_side "
    "DEFERRABLE INITIALLY DEFERRED)",
    "ALTER TABLE a_side ADD FOREIGN KEY (b_id) REFERENCES b_side DEFERRABLE INITIALLY DEFERRED",
]
FK_TABLES = ["a_side", "b_side", "entries", "lines", "orders"]
# 1500 orders (two copy pages), the first 50 pointing to orders of the second page
FK_ROWS = """
INSERT INTO orders SELECT g, CASE WHEN g <= 50 THEN 1501 - g END, 'o' || g
FROM generate_series(1, 1500) g;
INSERT INTO lines SELECT g, 1 + g % 1500, g FROM generate_series(1, 3000) g;
INSERT INTO entries SELECT g, 1 + (g * 7) % 3000, g FROM generate_series(1, 1200) g;
INSERT INTO a_side SELECT g, 1201 - g FROM generate_series(1, 1200) g;
INSERT INTO b_side SELECT g, g FROM generate_series(1, 1200) g;
"""
FK_ROW_COUNT = 1500 + 3000 + 1200 + 1200 + 1200


def fk_pair(primary, replica, *source_args):
    for stmt in FK_DDL:
        primary.sql(stmt)
    primary.sql(FK_ROWS)
    pair(primary, replica, [], FK_TABLES, *source_args, replica_ddl=FK_DDL)


def assert_same(primary, replica):
    for t in FK_TABLES:
        assert rows_md5(replica, t) == rows_md5(primary, t), t
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE status = 'Failed'") == 0
    assert replica.one("SELECT count(*) FROM tdgl_replica.conflicts") == 0


def initial_sync(replica, env=None):
    p = replica.cli("pull", "main", env=env)
    r = json.loads(p.stdout)
    assert r["status"] == "Success" and r["failed"] == 0, (r, p.stderr[-3000:])
    # the log counts the rows that went in, nothing else
    assert f"initial sync copied {FK_ROW_COUNT} rows;" in p.stderr, p.stderr[-3000:]
    return p


def test_foreign_keys_initial_sync_and_stream(primary, replica):
    fk_pair(primary, replica, "--batch-size", "7")    # transactions straddle pages
    initial_sync(replica)
    # a child before its parent (deferred key), parents and children interleaved
    for i in range(12):
        primary.sql(f"""
            INSERT INTO entries VALUES ({5000 + i}, {4000 + i}, {i});
            INSERT INTO orders VALUES ({3000 + i}, {3000 + i - 1 if i else 'NULL'}, 'n');
            INSERT INTO lines VALUES ({4000 + i}, {3000 + i}, 1);
            UPDATE orders SET note = 'x{i}' WHERE id = {1 + i};""")
    primary.sql("DELETE FROM orders WHERE id = 3")                # cascades to lines, entries
    primary.sql("UPDATE orders SET id = 9000 WHERE id = 1455")    # cascades to lines, orders
    primary.sql("DELETE FROM lines WHERE id = 4003")              # cascades to entries
    primary.sql("UPDATE a_side SET b_id = 7 WHERE id = 1; UPDATE b_side SET a_id = 9 WHERE id = 2")
    r = pull(replica)
    assert r["status"] == "Success" and r["failed"] == 0 and r["conflicts"] == 0, r
    assert replica.one("SELECT count(*) FROM lines WHERE order_id = 9000") == 2
    assert_same(primary, replica)


def test_foreign_keys_without_the_privilege_to_set_the_replica_role(primary, replica):
    """The fallback: a role that may not set session_replication_role applies with the keys
    checked; the copy goes parents first, a deferrable cycle in one transaction, rows that
    point forward after the rest. It says so once."""
    fk_pair(primary, replica)
    role = f"apply_{replica.dbname}"
    replica.sql(f"CREATE ROLE {role} LOGIN")
    for g in ("USAGE ON SCHEMA tdgl_replica", "ALL ON ALL TABLES IN SCHEMA tdgl_replica",
              "ALL ON ALL SEQUENCES IN SCHEMA tdgl_replica", "ALL ON ALL TABLES IN SCHEMA public"):
        replica.sql(f"GRANT {g} TO {role}")
    env = {"TDGL_DB": replica.conninfo.replace("user=postgres", f"user={role}")}
    p = initial_sync(replica, env)
    assert p.stderr.count("may not set session_replication_role") == 1, p.stderr[-3000:]
    for i in range(12):                               # interleaved, parents first
        primary.sql(f"""
            INSERT INTO orders VALUES ({3000 + i}, 1, 'n');
            INSERT INTO lines VALUES ({4000 + i}, {3000 + i}, 1);
            INSERT INTO entries VALUES ({5000 + i}, {4000 + i}, {i});
            UPDATE orders SET note = 'x{i}' WHERE id = {1 + i};""")
    primary.sql("DELETE FROM orders WHERE id = 3")    # the replica cascades too: no conflict
    r = json.loads(replica.cli("pull", "main", env=env).stdout)
    assert r["status"] == "Success" and r["failed"] == 0 and r["conflicts"] == 0, r
    assert_same(primary, replica)


def test_interleaved_transactions_apply_table_by_table(primary, replica):
    ddl = ["CREATE TABLE head (id int PRIMARY KEY, v text)",
           "CREATE TABLE line (id int PRIMARY KEY, head_id int REFERENCES head "
           "ON UPDATE CASCADE ON DELETE CASCADE, v text)",
           "CREATE TABLE bal (id int PRIMARY KEY, v int)"]
    pair(primary, replica, ddl, ["bal", "head", "line"])
    primary.sql("INSERT INTO bal VALUES (1, 0), (2, 0)")
    pull(replica)
    for i in range(1, 31):
        primary.sql(f"""
            INSERT INTO head VALUES ({i}, 'h');
            INSERT INTO line SELECT {i} * 10 + g, {i}, 'l' FROM generate_series(1, 3) g;
            UPDATE bal SET v = v + 1 WHERE id = {1 + i % 2};""")
    # a key deleted in one table and inserted in another; deleted and inserted again in one;
    # a key change cascading; the same row changed again and again
    primary.sql("DELETE FROM head WHERE id = 7; INSERT INTO bal VALUES (7, 7)")
    primary.sql("DELETE FROM line WHERE id = 11; INSERT INTO line VALUES (11, 2, 'again')")
    primary.sql("UPDATE head SET id = 99 WHERE id = 5; INSERT INTO head VALUES (5, 'new')")
    primary.sql("UPDATE line SET v = 'z' WHERE id = 21; UPDATE line SET v = 'zz' WHERE id = 21")
    r = pull(replica)
    assert r["status"] == "Success" and r["failed"] == 0 and r["pages"] == 1, r
    for t in ("head", "line", "bal"):
        assert rows_md5(replica, t) == rows_md5(primary, t), t
    # one page: the log follows the runs, a few per table, not one per change
    tbls = [t for (t,) in replica.sql("SELECT tbl FROM tdgl_replica.sync_entries WHERE run_id = %s "
                                      "ORDER BY id, seq", (r["run_id"],))]
    switches = sum(1 for a, b in zip(tbls, tbls[1:]) if a != b)
    assert len(tbls) == r["fetched"] and switches == 2, (switches, tbls)


def test_local_edits_are_caught_whatever_the_sessions_replication_role(primary, replica):
    pair(primary, replica, "CREATE TABLE t (id int PRIMARY KEY, v text)", ["t"])
    replica.sql("CREATE TABLE audit (n int); CREATE FUNCTION audit() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (1); RETURN NULL; END $$;"
                "CREATE TRIGGER audit AFTER INSERT OR UPDATE ON t FOR EACH ROW "
                "EXECUTE FUNCTION audit()")
    assert replica.one("SELECT tgenabled FROM pg_trigger WHERE tgname = 'tdgl_local_edit'") == "A"
    primary.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    pull(replica)
    # the replica's ordinary triggers do not fire for applied rows (as in native logical
    # replication); an edit here is caught even from a session running as replica
    assert replica.one("SELECT count(*) FROM audit") == 0
    replica.sql("SET session_replication_role = replica; UPDATE t SET v = 'mine' WHERE id = 1; "
                "RESET session_replication_role")
    assert replica.one("SELECT count(*) FROM tdgl_replica.local_edits") == 1
    primary.sql("UPDATE t SET v = v || '2'")
    r = pull(replica)
    assert r["conflicts"] == 1 and r["synced"] == 1, r
    assert replica.sql("SELECT id, v FROM t ORDER BY id") == [(1, "mine"), (2, "b2")]


def test_a_row_changed_by_every_transaction_of_a_page_takes_one_statement(primary, replica):
    """Hot rows: the upserts of one table in a page go in one statement, and every change
    gets the outcome it gets applied one by one."""
    pair(primary, replica, "CREATE TABLE bal (id int PRIMARY KEY, v int, extra text)", ["bal"],
         replica_ddl=["CREATE TABLE bal (id int PRIMARY KEY, v int)",     # no column extra
                      "CREATE TABLE stmts (n int)",
                      "CREATE FUNCTION stmts() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN INSERT INTO stmts VALUES (1); RETURN NULL; END $$",
                      "CREATE TRIGGER stmts AFTER INSERT ON bal FOR EACH STATEMENT "
                      "EXECUTE FUNCTION stmts()",
                      "ALTER TABLE bal ENABLE ALWAYS TRIGGER stmts"])
    primary.sql("INSERT INTO bal VALUES (1, 0, 'a'), (2, 0, 'a'), (3, 0, 'a')")
    pull(replica)
    replica.sql("UPDATE bal SET v = 100 WHERE id = 3; TRUNCATE stmts")      # a local edit
    for i in range(1, 11):
        primary.sql(f"""UPDATE bal SET v = v + 1 WHERE id = 1;
            UPDATE bal SET extra = 'x{i}', v = CASE WHEN {i} = 5 THEN 7 ELSE v END WHERE id = 2;
            UPDATE bal SET v = v + 1 WHERE id = 3""")
    r = pull(replica)
    assert r["fetched"] == 30 and r["synced"] == 11 and r["conflicts"] == 10, r
    assert replica.one("SELECT count(*) FROM stmts") == 1
    assert replica.sql("SELECT id, v FROM bal ORDER BY id") == [(1, 10), (2, 7), (3, 100)]
    log = replica.sql("SELECT pk->>'id', status, reason FROM tdgl_replica.sync_entries WHERE run_id = %s "
                      "ORDER BY change_id", (r["run_id"],))
    assert [x for x in log if x[0] == "1"] == [("1", "Synced", None)] * 10
    assert [x[2] for x in log if x[0] == "2"] == ["no changes"] * 4 + [None] + ["no changes"] * 5
    assert {x[2] for x in log if x[0] == "3"} == {"conflict: row edited locally"}
    assert replica.sql("SELECT refreshed, primary_row->>'v' FROM tdgl_replica.conflicts") == [(9, "10")]

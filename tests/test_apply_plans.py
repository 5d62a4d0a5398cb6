"""A session plans each apply statement once (replica schema 9): the statements live in one
function of the session, pg_temp.tdgl_apply, chosen by key. That state must follow the
session through what a pooled connection lives through: a rolled-back transaction that
created it, DISCARD TEMP, a table altered between runs. Each test applies with
tdgl_replica.apply_run on one connection of its own, as a pull's session does. The function
holds a session's first 32 statements; the rest are planned at every run, as before."""
import contextlib

from test_replica import CUSTOMER, pair, pull  # noqa: F401 - also patches harness

CHANGES = ("ARRAY(SELECT ROW(g, g, 'Update', json_build_object('id', g), NULL, "
           "json_build_object('id', g, 'name', %s, 'company', 'C', 'amount', g{extra}), "
           "NULL)::tdgl_replica.change FROM generate_series(1, %s) g)")


@contextlib.contextmanager
def session(primary, replica):
    """A paired replica (customer, source main): a connection of its own and a run id."""
    pair(primary, replica, CUSTOMER, ["customer"])
    pull(replica)
    conn = replica.cluster.connect(replica.dbname, autocommit=False)
    run_id = replica.one("INSERT INTO tdgl_replica.runs (source, trigger) "
                         "VALUES ('main', 'Manual') RETURNING id")
    try:
        yield conn, run_id
    finally:
        conn.close()


def apply(conn, run_id, name, n=5, extra="", commit=True, table="customer"):
    """Applies n upserts of rows 1..n of table named name in conn's transaction; returns
    synced."""
    with conn.cursor() as cur:
        cur.execute("SELECT tdgl_replica.apply_mode()")    # as every apply transaction does
        cur.execute("SELECT (tdgl_replica.apply_run('main', %s, %s, 'U', "
                    + CHANGES.format(extra=extra) + ")).synced", (run_id, table, name, n))
        synced = cur.fetchone()[0]
    if commit:
        conn.commit()
    return synced


def names(replica):
    return replica.sql("SELECT DISTINCT name FROM customer")


def statements(conn):
    """The keys the session's apply function holds, and how many such functions there are."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('tdgl_replica.apply_keys', true), "
                    "(SELECT count(*) FROM pg_proc WHERE proname = 'tdgl_apply' "
                    " AND pronamespace = pg_my_temp_schema())")
        keys, funcs = cur.fetchone()
    conn.commit()
    return [k for k in (keys or "").split(" ") if k], funcs


def test_a_rolled_back_first_apply_leaves_the_session_able_to_apply(primary, replica):
    with session(primary, replica) as (conn, run_id):
        assert apply(conn, run_id, "undone", commit=False) == 5
        conn.rollback()                 # took back the function and the session's keys
        assert statements(conn) == ([], 0)
        assert names(replica) == []
        assert apply(conn, run_id, "kept") == 5
        assert names(replica) == [("kept",)]
        assert len(statements(conn)[0]) == 1


def test_a_discarded_apply_function_is_made_again(primary, replica):
    with session(primary, replica) as (conn, run_id):
        assert apply(conn, run_id, "before") == 5
        with conn.cursor() as cur:
            cur.execute("DISCARD TEMP")     # the function goes; the session's keys stay
        conn.commit()
        assert statements(conn)[1] == 0
        assert apply(conn, run_id, "after") == 5
        assert names(replica) == [("after",)]
        assert statements(conn)[1] == 1


def test_a_table_altered_between_runs_gets_a_statement_of_its_own(primary, replica):
    with session(primary, replica) as (conn, run_id):
        assert apply(conn, run_id, "old shape") == 5
        replica.sql("ALTER TABLE customer ADD COLUMN note text")
        assert apply(conn, run_id, "new shape", extra=", 'note', 'noted'") == 5
        assert replica.sql("SELECT DISTINCT name, note FROM customer") == [("new shape", "noted")]
        # both statements stay in the one function, each still right for its snapshots
        keys, funcs = statements(conn)
        assert len(keys) == 2 and funcs == 1, (keys, funcs)
        assert apply(conn, run_id, "old again") == 5
        assert replica.sql("SELECT DISTINCT name, note FROM customer") == [("old again", "noted")]
        assert len(statements(conn)[0]) == 2


def test_a_session_past_its_32_planned_statements_applies_the_rest_planned_per_run(
        primary, replica):
    with session(primary, replica) as (conn, run_id):
        replica.sql("DO $$ BEGIN FOR i IN 1..33 LOOP "
                    "EXECUTE format('CREATE TABLE t%s (LIKE customer INCLUDING ALL)', i); "
                    "INSERT INTO tdgl_replica.source_tables (source, tbl) VALUES ('main', 't' || i); "
                    "END LOOP; END $$")
        for i in range(1, 34):
            assert apply(conn, run_id, f"row of t{i}", n=3, table=f"t{i}") == 3, i
        keys, funcs = statements(conn)
        assert len(keys) == 32 and funcs == 1, (len(keys), funcs)
        assert replica.one("SELECT string_agg(DISTINCT name, ',') FROM t33") == "row of t33"
        assert replica.one("SELECT count(*) FROM t1") == 3

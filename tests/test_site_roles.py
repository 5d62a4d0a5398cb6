"""Both roles on one database: a site of a two-way sync runs tdgl-primary and tdgl-replica on
its own database. Each role keeps its state in its own schema (tdgl, tdgl_replica), migrates,
upgrades and is removed on its own."""
import pytest

from harness import PRIMARY_SCHEMA, REPLICA_SCHEMA
from sites import PrimarySite, ReplicaSite
from test_replica import pair, pull

@pytest.fixture
def both(primary_cluster, servers, logdir):
    """One database and both roles' handles on it (not migrated)."""
    db = primary_cluster.new_db("both")
    p = PrimarySite(primary_cluster, db, servers, logdir)
    r = ReplicaSite(primary_cluster, db, servers, logdir)
    yield p, r
    p.close()
    r.close()


@pytest.mark.parametrize("order", ["primary-first", "replica-first"])
def test_both_roles_migrate_and_run_on_one_database(both, primary, order):
    site_p, site_r = both
    for s in ((site_p, site_r) if order == "primary-first" else (site_r, site_p)):
        s.migrate()
        s.migrate()                      # idempotent beside the other role too
    assert site_p.one("SELECT max(version) FROM tdgl.schema_version") == PRIMARY_SCHEMA
    assert site_p.one("SELECT max(version) FROM tdgl_replica.schema_version") == REPLICA_SCHEMA
    # one site, one identity, whichever role made it
    assert site_p.one("SELECT count(DISTINCT id) FROM (SELECT id FROM tdgl.site_identity"
                      " UNION ALL SELECT id FROM tdgl_replica.site_identity) s") == 1
    # the replica role pulls a table from another primary ...
    pair(primary, site_r, "CREATE TABLE u (id int PRIMARY KEY, v text)", ["u"])
    primary.sql("INSERT INTO u VALUES (1, 'from elsewhere')")
    assert pull(site_r)["synced"] == 1
    # ... while the primary role of the same database tracks and serves its own table
    site_p.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    site_p.track("t")
    site_p.sql("INSERT INTO t VALUES (7, 'local')")
    site_p.serve()
    key, secret = site_p.keygen()
    page = site_p.get("/api/changes", key, secret).json()
    assert [(c["table"], c["pk"]) for c in page["changes"]] == [("t", {"id": 7})], page
    assert site_r.one("SELECT v FROM u WHERE id = 1") == "from elsewhere"
    # both commands see their own role
    assert "t" in site_p.cli("tables").stdout
    assert "main" in site_r.cli("source", "list").stdout


def test_a_replica_database_of_version_6_moves_to_its_own_schema(primary, replica):
    pair(primary, replica, "CREATE TABLE u (id int PRIMARY KEY, v text)", ["u"])
    primary.sql("INSERT INTO u VALUES (1, 'a')")
    pull(replica)
    # what a version-6 database looked like: the replica's state in schema tdgl
    replica.sql("ALTER SCHEMA tdgl_replica RENAME TO tdgl")
    replica.sql("DELETE FROM tdgl.schema_version WHERE version > 6")
    replica.migrate()
    assert replica.one("SELECT to_regnamespace('tdgl') IS NULL")
    assert replica.one("SELECT max(version) FROM tdgl_replica.schema_version") == REPLICA_SCHEMA
    # the cursor, the log and the local-edit triggers came along and work
    primary.sql("INSERT INTO u VALUES (2, 'b')")
    assert pull(replica)["synced"] == 1
    replica.sql("UPDATE u SET v = 'local' WHERE id = 1")
    assert replica.one("SELECT count(*) FROM tdgl_replica.local_edits") == 1
    primary.sql("UPDATE u SET v = 'primary' WHERE id = 1")
    assert pull(replica)["conflicts"] == 1


def test_each_role_is_removed_on_its_own(both):
    site_p, site_r = both
    site_p.migrate()
    site_r.migrate()
    site_p.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    site_p.track("t")
    site_r.cli("source", "add", "peer", "--url", "http://127.0.0.1:9", "--key", "k",
               "--secret", "s", "--tables", "t")
    # removing the replica role leaves the primary capturing
    site_r.sql("DROP SCHEMA tdgl_replica CASCADE")
    site_p.sql("INSERT INTO t VALUES (1, 'a')")
    assert site_p.one("SELECT count(*) FROM tdgl.change_log") == 1
    assert site_p.one("SELECT count(*) FROM pg_trigger WHERE tgname = 'tdgl_local_edit'") == 0
    # and the other way round: the replica role back, the primary role removed
    site_r.migrate()
    site_p.sql("DROP SCHEMA tdgl CASCADE")
    site_p.sql("INSERT INTO t VALUES (2, 'b')")      # no capture trigger left behind
    assert site_r.cli("status").returncode == 0
    assert site_p.one("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tdgl_capture%'") == 0

"""verify and repair: a replica proved equal to its primary, and fixed when it is not
(real clusters, real processes; rows changed behind the replica's back with tdgl.applying on)."""
import json
import threading

from test_replica import pair, pull

ITEM = "CREATE TABLE item (id bigint PRIMARY KEY, name text, qty int, price numeric(10,2))"


def verify(replica, *args, check=False):
    """Runs `tdgl-replica verify main --json ...`; returns (exit code, report)."""
    p = replica.cli("verify", "main", "--json", *args, check=check)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None)


def table(report, name):
    return next(t for t in report["tables"] if t["table"] == name)


def behind_the_back(replica, stmt):
    """Changes replica rows as if the triggers had been bypassed: no local edit is recorded."""
    replica.sql(f"BEGIN; SET LOCAL tdgl.applying = on; {stmt}; COMMIT")


def synced_items(primary, replica, n=500):
    pair(primary, replica, ITEM, ["item"])
    primary.sql(f"INSERT INTO item SELECT g, 'n' || g, g % 7, g / 3.0 "
                f"FROM generate_series(1, {n}) g")
    assert pull(replica)["status"] == "Success"


def test_identical_tables_verify_identical(primary, replica):
    synced_items(primary, replica)
    rc, rep = verify(replica)
    assert rc == 0 and rep["identical"] is True
    t = table(rep, "item")
    assert t["status"] == "identical" and t["counts"]["different"] == 0
    p = replica.cli("verify", "main")
    assert p.returncode == 0 and p.stdout.strip() == "item: identical"


def test_drift_is_reported_exactly_and_repaired(primary, replica):
    synced_items(primary, replica)
    behind_the_back(replica, "UPDATE item SET qty = 99 WHERE id IN (5, 300)")
    behind_the_back(replica, "DELETE FROM item WHERE id = 7")
    behind_the_back(replica, "INSERT INTO item VALUES (1000, 'x', 1, 1)")
    rc, rep = verify(replica)
    t = table(rep, "item")
    assert rc == 3 and rep["identical"] is False and t["status"] == "different"
    assert t["missing"] == [{"id": 7}]
    assert t["extra"] == [{"id": 1000}]
    assert sorted(d["key"]["id"] for d in t["different"]) == [5, 300]
    assert all(d["columns"] == ["qty"] for d in t["different"])

    rc, rep = verify(replica, "--repair")
    t = table(rep, "item")
    assert rc == 0 and t["status"] == "identical"
    assert t["repair"]["applied"] == 4 and t["repair"]["failed"] == 0
    assert replica.sql("SELECT id, qty FROM item WHERE id IN (5, 7, 300, 1000) ORDER BY id") == \
        primary.sql("SELECT id, qty FROM item WHERE id IN (5, 7, 300, 1000) ORDER BY id")
    run = t["repair"]["run_id"]
    assert replica.one("SELECT trigger FROM tdgl.runs WHERE id = %s", (run,)) == "Repair"
    assert sorted(replica.sql("SELECT op, status, pk->>'id' FROM tdgl.sync_log "
                              "WHERE run_id = %s", (run,))) == [
        ("Delete", "Synced", "1000"), ("Repair", "Synced", "300"),
        ("Repair", "Synced", "5"), ("Repair", "Synced", "7")]
    assert verify(replica)[0] == 0

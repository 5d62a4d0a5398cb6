"""verify and repair: a replica proved equal to its primary, and fixed when it is not
(real clusters, real processes; rows changed behind the replica's back with tdgl.applying on)."""
import json
import threading

from harness import wait_until
from sites import Site
from test_replica import TYPES_DDL, pair, pull

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


def synced_items(primary, replica, n=500, *source_args):
    pair(primary, replica, ITEM, ["item"], *source_args)
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
    assert replica.one("SELECT trigger FROM tdgl_replica.runs WHERE id = %s", (run,)) == "Repair"
    assert sorted(replica.sql("SELECT op, status, pk->>'id' FROM tdgl_replica.sync_entries "
                              "WHERE run_id = %s", (run,))) == [
        ("Delete", "Synced", "1000"), ("Repair", "Synced", "300"),
        ("Repair", "Synced", "5"), ("Repair", "Synced", "7")]
    assert verify(replica)[0] == 0


def test_rows_edited_here_are_kept_local_not_repaired(primary, replica):
    synced_items(primary, replica, n=50)
    replica.sql("UPDATE item SET name = 'mine' WHERE id = 3")        # a local edit
    rc, rep = verify(replica, "--repair")
    t = table(rep, "item")
    assert rc == 0 and t["kept_local"] == [{"id": 3}] and t["counts"]["different"] == 0
    assert t["repair"]["applied"] == 0
    assert replica.one("SELECT name FROM item WHERE id = 3") == "mine"


def test_a_filtered_source_is_compared_with_its_subset(primary, replica):
    pair(primary, replica, ITEM, ["item"], "--filter", 'item={"qty":1}')
    primary.sql("INSERT INTO item SELECT g, 'n' || g, g % 3, g FROM generate_series(1, 300) g")
    pull(replica)
    assert replica.one("SELECT count(*) FROM item") == 100
    assert verify(replica)[0] == 0
    behind_the_back(replica, "INSERT INTO item VALUES (3, 'outside the subset', 0, 0)")
    behind_the_back(replica, "DELETE FROM item WHERE id = 4")
    rc, rep = verify(replica, "--repair")
    t = table(rep, "item")
    assert rc == 0 and t["repair"]["found"]["extra"] == [{"id": 3}]
    assert t["repair"]["found"]["missing"] == [{"id": 4}]
    assert replica.one("SELECT count(*) FROM item") == 100


def test_only_shared_columns_are_compared(primary, replica):
    pair(primary, replica, ITEM, ["item"], replica_ddl=[
        ITEM.replace("price numeric(10,2)", "price numeric(10,2), note text DEFAULT 'local'")])
    primary.sql("INSERT INTO item SELECT g, 'n', 1, 1 FROM generate_series(1, 100) g")
    pull(replica)
    behind_the_back(replica, "UPDATE item SET note = 'anything' WHERE id < 50")
    assert verify(replica)[0] == 0
    behind_the_back(replica, "UPDATE item SET price = 2 WHERE id = 10")
    rc, rep = verify(replica)
    assert rc == 3 and table(rep, "item")["different"] == [{"key": {"id": 10},
                                                             "columns": ["price"]}]


KEYS = [
    ("CREATE TABLE kt (k text PRIMARY KEY, v int)",
     "INSERT INTO kt SELECT 'ключ ' || g || ' ✓', g FROM generate_series(1, 200) g",
     "kt", "UPDATE kt SET v = -1 WHERE k = 'ключ 7 ✓'", {"k": "ключ 7 ✓"}),
    ("CREATE TABLE kc (a int, b text, v int, PRIMARY KEY (a, b))",
     "INSERT INTO kc SELECT g % 10, 'b' || g, g FROM generate_series(1, 200) g",
     "kc", "DELETE FROM kc WHERE a = 3 AND b = 'b13'", {"a": 3, "b": "b13"}),
    ("CREATE TABLE ku (id uuid PRIMARY KEY, v int)",
     "INSERT INTO ku SELECT md5(g::text)::uuid, g FROM generate_series(1, 200) g",
     "ku", "UPDATE ku SET v = -1 WHERE v = 5", {"id": "e4da3b7f-bbce-2345-d777-2b0674a318d5"}),
]


def test_keys_of_several_types(primary, replica):
    pair(primary, replica, [k[0] for k in KEYS], [k[2] for k in KEYS])
    for k in KEYS:
        primary.sql(k[1])
    pull(replica)
    rc, rep = verify(replica)
    assert rc == 0, rep
    for k in KEYS:
        behind_the_back(replica, k[3])
    rc, rep = verify(replica)
    assert rc == 3, [t.get("error") for t in rep["tables"]]
    found = {t["table"]: t["missing"] + [d["key"] for d in t["different"]] for t in rep["tables"]}
    assert found == {k[2]: [k[4]] for k in KEYS}
    assert verify(replica, "--repair")[0] == 0


def test_verify_while_a_writer_is_busy_reports_nothing_false(primary, replica):
    # the writer updates rows 1..200 and inserts and deletes others while the replica
    # streams them; only the row changed behind the replica's back differs
    synced_items(primary, replica, 300, "--long-poll")
    behind_the_back(replica, "UPDATE item SET name = 'drift' WHERE id = 250")
    replica.serve()
    stop = threading.Event()
    done = []
    w = Site(primary.cluster, primary.dbname, [], primary.logdir)
    thread = threading.Thread(target=_write, args=(w, stop, done))
    thread.start()
    try:
        wait_until(lambda: len(done) > 20, timeout=30, what="writer running")
        rc, rep = verify(replica)
    finally:
        stop.set()
        thread.join()
        w.close()
    t = table(rep, "item")
    assert rc == 3 and t["missing"] == [] and t["extra"] == []
    assert t["different"] == [{"key": {"id": 250}, "columns": ["name"]}]


def _write(site, stop, done):
    i = 0
    while not stop.is_set():
        i += 1
        site.sql(f"UPDATE item SET qty = qty + 1 WHERE id = {1 + i % 200}")
        site.sql(f"INSERT INTO item VALUES ({1000 + i}, 'w', 0, 0)")
        site.sql(f"DELETE FROM item WHERE id = {1000 + i - 5}")
        done.append(i)


def test_exit_codes(primary, replica):
    synced_items(primary, replica, n=10)
    assert replica.cli("verify", check=False).returncode == 2
    assert replica.cli("verify", "main", "--table", "nope", check=False).returncode == 2
    p = replica.cli("verify", "nosuch", check=False)
    assert p.returncode == 1 and "unknown source" in p.stderr
    primary.server.stop()
    p = replica.cli("verify", "main", check=False)
    assert p.returncode == 1 and "item: failed" in p.stdout


def test_admin_api_verifies_keeps_the_result_and_exports_a_metric(primary, replica):
    synced_items(primary, replica, n=20)
    behind_the_back(replica, "DELETE FROM item WHERE id = 2")
    replica.serve()
    r = replica.api("POST", "/api/sources/main/verify", json={"tables": ["item"]})
    assert r.status_code == 200 and r.json()["tables"][0]["missing"] == [{"id": 2}]
    last = replica.api("GET", "/api/verifications", params={"source": "main"}).json()
    assert [(v["table"], v["status"], v["missing"]) for v in last] == [("item", "different", 1)]
    m = replica.api("GET", "/metrics").text
    assert 'tdgl_replica_verify_differences{source="main",table="item"} 1' in m
    r = replica.api("POST", "/api/sources/main/verify", json={"repair": True})
    assert r.status_code == 200 and r.json()["identical"] is True
    last = replica.api("GET", "/api/verifications").json()
    assert [(v["status"], v["repaired"]) for v in last] == [("identical", 1)]
    for body, status in (("{", 400), ('{"tables": "item"}', 400), ('{"repair": 1}', 400),
                         ('{"tables": ["nope"]}', 400), ('{"x": 1}', 400)):
        r = replica.api("POST", "/api/sources/main/verify", data=body)
        assert r.status_code == status and "error" in r.json(), body
    r = replica.api("POST", "/api/sources/nosuch/verify")
    assert r.status_code == 404 and "error" in r.json()


def test_hashes_endpoint_refuses_bad_input(primary, replica):
    key, secret = pair(primary, replica, ITEM, ["item"])
    for params in ({"mode": "buckets", "columns": '["id"]'},
                   {"mode": "buckets", "table": "item"},
                   {"mode": "nope", "table": "item", "columns": '["id"]'},
                   {"mode": "buckets", "table": "nope", "columns": '["id"]'},
                   {"mode": "buckets", "table": "item", "columns": '["name"]'},
                   {"mode": "buckets", "table": "item", "columns": '["id"]', "bits": "99"},
                   {"mode": "buckets", "table": "item", "columns": '["id"]', "bits": "4",
                    "prefix_bits": "2", "prefixes": "7"},
                   {"mode": "keys", "table": "item", "columns": '["id"]', "filter": "[1]"},
                   {"mode": "rows", "table": "item", "columns": '["id"]', "keys": '[1]'},
                   {"mode": "rows", "table": "item", "columns": '["id"]', "keys": '[{"id":"x"}]'},
                   {"mode": "rows", "table": "item", "columns": '["id"]', "keys": '[]',
                    "cursor": "bad"}):
        r = primary.get("/api/hashes", key, secret, **params)
        assert r.status_code == 400 and "error" in r.json(), (params, r.text)
    assert primary.get("/api/hashes", key, "wrong", table="item").status_code == 401


def test_values_of_every_type_verify_identical_across_time_zones(primary, replica):
    # each site prints values under its own session settings; verify hashes them under
    # fixed ones, so two sites in different time zones still agree
    primary.sql(f'ALTER DATABASE "{primary.dbname}" SET timezone = \'America/New_York\'')
    replica.sql(f'ALTER DATABASE "{replica.dbname}" SET timezone = \'Asia/Tokyo\'')
    pair(primary, replica, TYPES_DDL, ["typed"])
    primary.sql("""INSERT INTO typed VALUES
      (1, 1.500, 12345678901234.123456, '\\x00ff10', '{1,2,NULL}', '{"a b","c,d","é"}',
       '{"k": [1, 2.50, "x"], "n": null}', '{"z": 1,  "a":2}', '2024-03-10 01:59:59.123456+00',
       '2024-01-01 00:00:00.5', '2024-02-29', '-0', '-0', 'héllo ✓ 𝄞', '1 day 02:03:04',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '10.0.0.1/24'),
      (2, 'NaN', NULL, '\\x', '{}', '{}', '[]', '"s"', 'infinity', '-infinity', 'infinity',
       'NaN', 'Infinity', '', NULL, NULL, false, '::1')""")
    pull(replica)
    assert verify(replica)[0] == 0
    behind_the_back(replica, "UPDATE typed SET ts = ts + interval '1 microsecond' WHERE id = 1")
    rc, rep = verify(replica)
    assert rc == 3 and table(rep, "typed")["different"] == [{"key": {"id": 1},
                                                              "columns": ["ts"]}]


def test_a_change_still_streaming_is_not_a_difference(primary, replica):
    synced_items(primary, replica, n=20)
    primary.sql("UPDATE item SET qty = 500 WHERE id = 4")     # not pulled yet
    primary.sql("INSERT INTO item VALUES (21, 'new', 1, 1)")
    primary.sql("DELETE FROM item WHERE id = 9")
    rc, rep = verify(replica)
    assert rc == 0 and table(rep, "item")["status"] == "identical"
    # verify caught up (a pull) and read the rows again at the new position
    assert replica.one("SELECT qty FROM item WHERE id = 4") == 500


def test_a_large_differing_bucket_is_split_down_to_its_rows(primary, replica):
    # the replica's statistics say the table is empty: one bucket of 2,000 rows, split
    pair(primary, replica, ITEM, ["item"])
    replica.sql("ALTER TABLE item SET (autovacuum_enabled = off)")   # the estimate stays 0
    replica.sql("ANALYZE item")
    primary.sql("INSERT INTO item SELECT g, 'n', 1, 1 FROM generate_series(1, 2000) g")
    pull(replica)
    behind_the_back(replica, "UPDATE item SET qty = 2 WHERE id IN (17, 1999)")
    rc, rep = verify(replica)
    t = table(rep, "item")
    assert rc == 3 and sorted(d["key"]["id"] for d in t["different"]) == [17, 1999]
    assert t["requests"] == 5      # columns, 1 bucket, its 64 parts, their rows, the 2 rows

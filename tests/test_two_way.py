"""Two-way sync (docs/design.md "Two-way sync"): what a site serves to a peer that syncs
with it in both directions. A change knows its origin (the site it was made on) and the
version of its row it replaced (its base); a peer is never served its own changes, nor those
this site applied from it."""
import json
import random
import threading
import time
import uuid

import psycopg2
import pytest

from harness import wait_until
from sites import PrimarySite, ReplicaSite

PEER = str(uuid.uuid4())
OTHER = str(uuid.uuid4())


def peer_page(primary, key, secret, **params):
    r = primary.get("/api/changes", key, secret, **params)
    assert r.status_code == 200, r.text
    return r.json()["changes"]


def serve_t(primary):
    """Table t tracked and served; returns (key, secret, this site's identity)."""
    primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    primary.track("t")
    primary.serve()
    key, secret = primary.keygen()
    return key, secret, primary.one("SELECT id::text FROM tdgl.site_identity")


def test_a_peer_is_not_served_what_came_from_it(primary):
    key, secret, site = serve_t(primary)
    primary.sql("INSERT INTO t VALUES (1, 'made here')")
    # what an apply session logs for changes it applied from peers (origin, id there, via)
    primary.sql("INSERT INTO tdgl.change_log (tbl, op, pk, row, origin, origin_id, origin_at,"
                " via) VALUES ('t', 'Create', '{\"id\":2}', '{\"id\":2,\"v\":\"peer\"}',"
                " %s, 40, now(), %s), ('t', 'Create', '{\"id\":3}', '{\"id\":3,\"v\":\"other\"}',"
                " %s, 41, now(), %s), ('t', 'Create', '{\"id\":4}',"
                " '{\"id\":4,\"v\":\"other via peer\"}', %s, 42, now(), %s)",
                (PEER, PEER, OTHER, OTHER, OTHER, PEER))
    served = peer_page(primary, key, secret, peer=PEER)
    assert [(c["pk"]["id"], c["version"]["origin"]) for c in served] == [(1, site), (3, OTHER)]
    assert served[1]["version"]["id"] == 41
    # a one-way replica gets everything, in the shape it always had
    plain = peer_page(primary, key, secret)
    assert [c["pk"]["id"] for c in plain] == [1, 2, 3, 4]
    assert "version" not in plain[0]


def test_each_change_names_the_version_it_replaced(primary):
    key, secret, site = serve_t(primary)
    primary.sql("SELECT tdgl.enable_row_versions()")
    primary.sql("INSERT INTO t VALUES (1, 'a')")
    primary.sql("UPDATE t SET v = 'b' WHERE id = 1")
    primary.sql("UPDATE t SET id = 2 WHERE id = 1")          # a key change
    primary.sql("INSERT INTO t VALUES (1, 're-inserted')")   # the old key again
    primary.sql("DELETE FROM t WHERE id = 2")
    ch = peer_page(primary, key, secret, peer=PEER)
    ids = [c["id"] for c in ch]
    assert [c["op"] for c in ch] == ["Create", "Update", "Rename", "Create", "Delete"]
    base = [c["version"]["base"] for c in ch]
    assert base[0] is None                             # a new row replaced nothing
    assert base[1] == {"origin": site, "id": ids[0]}
    assert base[2] == {"origin": site, "id": ids[1]}   # the rename replaced key 1's
    assert base[3] == {"origin": site, "id": ids[2]}   # key 1 was renamed away
    assert base[4] == {"origin": site, "id": ids[2]}   # key 2 came from the rename
    assert all(c["version"]["origin"] == site and c["version"]["id"] == c["id"] for c in ch)


def test_a_peers_copy_pages_carry_each_rows_version(primary):
    key, secret, site = serve_t(primary)
    primary.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    primary.sql("UPDATE t SET v = 'b2' WHERE id = 2")
    primary.sql("DELETE FROM tdgl.change_log WHERE pk::text = '{\"id\" : 3}'")  # no history
    last = primary.sql("SELECT id FROM tdgl.change_log ORDER BY id")[-1][0]
    r = primary.get("/api/rows", key, secret, table="t", peer=PEER, limit=2)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["id"] for x in page["rows"]] == [1, 2] and page["site"] == site
    assert page["versions"][1] == {"origin": site, "id": last,
                                   "at": page["versions"][1]["at"]}
    r = primary.get("/api/rows", key, secret, table="t", peer=PEER, after=json.dumps(page["next"]))
    assert r.json()["rows"] == [{"id": 3, "v": "c"}] and r.json()["versions"] == [None]
    # a one-way replica's pages keep their shape
    assert "versions" not in primary.get("/api/rows", key, secret, table="t").json()


def test_a_peer_that_is_not_a_site_identity_is_refused(primary):
    primary.serve()
    key, secret = primary.keygen()
    for bad in ("x", PEER[:-1], PEER + "0", PEER.replace("-", "_"), "'; DROP TABLE t; --"):
        for path in ("/api/changes", "/api/rows"):
            r = primary.get(path, key, secret, peer=bad, table="t")
            assert r.status_code == 400 and "site identity" in r.json()["error"], (bad, r.text)
    r = primary.get("/api/rows", key, secret, table="t", peer=PEER, format="copy")
    assert r.status_code == 400 and "format=json" in r.json()["error"], r.text


# ---- two sites, each running both roles on its own database ----

T = "CREATE TABLE item (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)"


class Site:
    """One site: a database with both roles, its primary serving."""

    def __init__(self, cluster, servers, logdir, name):
        db = cluster.new_db(name)
        self.name = name
        self.p = PrimarySite(cluster, db, servers, logdir)
        self.r = ReplicaSite(cluster, db, servers, logdir)
        self.p.migrate()
        self.r.migrate()
        self.p.sql(T)
        self.p.track("item")
        self.p.serve()
        self.id = self.p.one("SELECT id::text FROM tdgl.site_identity")

    def sql(self, q, params=None):
        return self.p.sql(q, params)

    def one(self, q, params=None):
        return self.p.one(q, params)

    def rows(self):
        return self.sql("SELECT id, v, n FROM item ORDER BY id")

    def pull(self, peer):
        return json.loads(self.r.cli("pull", peer.name).stdout)

    def close(self):
        self.p.close()
        self.r.close()


def link(a, b, policy="manual", *args):
    """a pulls item from b (a source named after b)."""
    key, secret = b.p.keygen(a.name)
    a.r.cli("source", "add", b.name, "--url", b.p.url, "--key", key, "--secret", secret,
            "--tables", "item", "--conflict-policy", policy, *args)


@pytest.fixture
def sites(primary_cluster, servers, logdir):
    made = []

    def make(*names, cluster=None):
        for n in names:
            made.append(Site(cluster or primary_cluster, servers, logdir, n))
        return made[-len(names):]
    yield make
    for s in made:
        s.close()


def pair(sites, policy_a="manual", policy_b=None):
    a, b = sites("a", "b")
    link(a, b, policy_a)
    link(b, a, policy_b or policy_a)
    a.pull(b)                      # the initial syncs (empty tables)
    b.pull(a)
    return a, b


def conflicts(site):
    return site.sql("SELECT status, resolution, decided_by FROM tdgl_replica.conflicts"
                    " ORDER BY id")


def test_a_change_reaches_the_peer_and_never_comes_back(sites):
    a, b = pair(sites)
    a.sql("INSERT INTO item VALUES (1, 'from a')")
    assert b.pull(a)["synced"] == 1
    assert b.rows() == [(1, "from a", 0)]
    # b logged it as a's change, received from a ...
    assert b.sql("SELECT origin::text, via::text FROM tdgl.change_log") == [(a.id, a.id)]
    # ... and a is never served it back
    r = a.pull(b)
    assert r["fetched"] == 0, r
    assert a.one("SELECT count(*) FROM tdgl.change_log") == 1


def test_back_and_forth_edits_never_conflict(sites):
    a, b = pair(sites)
    a.sql("INSERT INTO item VALUES (1, 'a1')")
    b.pull(a)
    for i in range(3):
        b.sql("UPDATE item SET v = %s, n = n + 1 WHERE id = 1", (f"b{i}",))
        assert a.pull(b)["conflicts"] == 0
        a.sql("UPDATE item SET v = %s, n = n + 1 WHERE id = 1", (f"a{i}",))
        assert b.pull(a)["conflicts"] == 0
    b.sql("DELETE FROM item WHERE id = 1")
    a.pull(b)
    a.sql("INSERT INTO item VALUES (1, 'again')")      # a re-insert after the delete
    assert b.pull(a)["conflicts"] == 0
    assert a.rows() == b.rows() == [(1, "again", 0)]
    assert conflicts(a) == conflicts(b) == []


def test_concurrent_edits_open_a_conflict_on_both_sides_when_manual(sites):
    a, b = pair(sites)
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    a.sql("UPDATE item SET v = 'edited on a' WHERE id = 1")
    b.sql("UPDATE item SET v = 'edited on b' WHERE id = 1")
    assert a.pull(b)["conflicts"] == 1
    assert b.pull(a)["conflicts"] == 1
    assert conflicts(a) == conflicts(b) == [("Open", None, None)]
    assert a.rows() == [(1, "edited on a", 0)] and b.rows() == [(1, "edited on b", 0)]


@pytest.mark.parametrize("a_first", [True, False])
def test_latest_wins_picks_the_same_version_on_both_sites(sites, a_first):
    a, b = pair(sites, "latest-wins")
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    first, second = (a, b) if a_first else (b, a)
    first.sql("UPDATE item SET v = 'first' WHERE id = 1")
    second.sql("UPDATE item SET v = 'second' WHERE id = 1")   # made later: wins
    a.pull(b)
    b.pull(a)
    assert a.rows() == b.rows() == [(1, "second", 0)]
    for s in (a, b):
        assert [c[2] for c in conflicts(s)] == ["latest-wins"]
        assert conflicts(s)[0][0] == "Resolved"
    # nothing more flows: the losing side took the winner without a new change
    assert a.pull(b)["fetched"] == 0 and b.pull(a)["fetched"] == 0


def test_one_site_wins_on_both_sides(sites):
    # b always wins: source-wins on a (its source is b), local-wins on b
    a, b = pair(sites, "source-wins", "local-wins")
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    b.sql("UPDATE item SET v = 'b wins' WHERE id = 1")
    a.sql("UPDATE item SET v = 'a loses' WHERE id = 1")      # later, and still loses
    a.pull(b)
    b.pull(a)
    assert a.rows() == b.rows() == [(1, "b wins", 0)]
    assert conflicts(a) == [("Resolved", "Accept Primary", "source-wins")]
    assert conflicts(b) == [("Resolved", "Keep Local", "local-wins")]


def test_a_decided_conflict_is_counted_resolved_in_the_run_its_summary_and_the_metrics(sites):
    a, b = pair(sites, "latest-wins")
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    a.sql("UPDATE item SET v = 'a' WHERE id = 1")
    b.sql("UPDATE item SET v = 'b' WHERE id = 1")
    p = b.r.cli("pull", "a")
    r = json.loads(p.stdout)
    assert (r["conflicts"], r["resolved"]) == (0, 1), r
    assert "conflicts=0 resolved=1" in p.stderr
    assert b.one("SELECT resolved FROM tdgl_replica.runs WHERE id = %s", (r["run_id"],)) == 1
    # the other side decides the same conflict while serving: its metrics count it
    a.r.serve()
    wait_until(lambda: a.one("SELECT count(*) FROM tdgl_replica.conflicts"
                             " WHERE status = 'Resolved'") == 1, what="a's decision")
    m = a.r.api("GET", "/metrics").text
    assert "\ntdgl_replica_conflicts_resolved_total 1\n" in m
    assert "\ntdgl_replica_conflicts_total 0\n" in m
    runs = a.r.api("GET", "/api/runs").json()
    assert sum(x["resolved"] for x in runs) == 1 and sum(x["conflicts"] for x in runs) == 0


def test_a_late_update_does_not_resurrect_a_row_deleted_later(sites):
    a, b = pair(sites, "latest-wins")
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    b.sql("UPDATE item SET v = 'edited on b' WHERE id = 1")
    a.sql("DELETE FROM item WHERE id = 1")                   # later: the delete wins
    a.pull(b)
    b.pull(a)
    assert a.rows() == b.rows() == []


def test_a_purge_keeps_the_tombstone_a_late_peer_change_needs(sites):
    a, b = pair(sites)
    a.sql("INSERT INTO item VALUES (1, 'base'), (2, 'other')")
    b.pull(a)
    b.sql("UPDATE item SET v = 'edited on b' WHERE id = 1")  # not yet pulled by a
    a.sql("DELETE FROM item WHERE id = 1")
    a.sql("UPDATE item SET v = 'again' WHERE id = 2")
    assert b.pull(a)["conflicts"] == 1                        # b consumed a's delete
    a.p.cli("purge", "--retention", "0s")
    # what no one needs any more went; each key's last version (the tombstone) stayed
    assert a.sql("SELECT op, pk::text FROM tdgl.change_log ORDER BY id") == \
        [("Delete", '{"id" : 1}'), ("Update", '{"id" : 2}')]
    # so b's update, made before it saw the delete, is a conflict here, not a resurrection
    assert a.pull(b)["conflicts"] == 1
    assert a.rows() == [(2, "again", 0)]


def test_hub_and_spoke_forwards_each_change_once_and_never_to_its_origin(sites):
    hq, b1, b2 = sites("hq", "b1", "b2")
    for branch in (b1, b2):
        link(hq, branch)
        link(branch, hq)
    for s, peers in ((hq, (b1, b2)), (b1, (hq,)), (b2, (hq,))):
        for peer in peers:
            s.pull(peer)
    b1.sql("INSERT INTO item VALUES (1, 'made on branch 1')")
    hq.sql("INSERT INTO item VALUES (2, 'made at head office')")
    hq.pull(b1)                                   # branch 1 -> head office
    for branch in (b1, b2):
        branch.pull(hq)                           # head office -> branches
    hq.pull(b2)
    hq.pull(b1)
    assert hq.rows() == b1.rows() == b2.rows() == [(1, "made on branch 1", 0),
                                                   (2, "made at head office", 0)]
    # each log: its own writes plus what it forwarded, each change once
    assert b1.sql("SELECT origin::text, pk::text FROM tdgl.change_log ORDER BY id") == \
        [(None, '{"id" : 1}'), (hq.id, '{"id" : 2}')]
    assert sorted(hq.sql("SELECT coalesce(origin::text, 'hq'), via::text FROM tdgl.change_log")) \
        == sorted([("hq", None), (b1.id, b1.id)])
    assert b2.one("SELECT count(*) FROM tdgl.change_log") == 2
    # and nothing moves any more
    for s, peer in ((hq, b1), (hq, b2), (b1, hq), (b2, hq)):
        assert s.pull(peer)["fetched"] == 0, (s.name, peer.name)


def with_history(site):
    """Rows 1-3 on a site before it links: 1 and 2 changed since tracking began, 3 without
    history (it predates tracking, or its history was purged)."""
    site.sql("INSERT INTO item VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    site.sql("UPDATE item SET n = n + 1 WHERE id = 1")
    site.sql("DELETE FROM tdgl.change_log WHERE pk::text = '{\"id\" : 3}'")


def test_a_site_that_joins_by_a_copy_edits_the_copied_rows_without_conflicts(sites):
    hq, b = sites("hq", "b")
    with_history(hq)
    link(b, hq)                                   # manual both ways
    link(hq, b)
    b.pull(hq)                                    # b's initial copy of hq's rows
    hq.pull(b)                                    # hq's of b's: the same rows, nothing new
    assert b.rows() == hq.rows()
    for s, peer in ((hq, b), (b, hq)):            # the copies went nowhere back
        assert s.pull(peer)["fetched"] == 0, s.name
    b.sql("UPDATE item SET v = 'b' WHERE id IN (1, 3)")
    assert hq.pull(b)["conflicts"] == 0
    hq.sql("UPDATE item SET v = 'hq' WHERE id IN (1, 2, 3)")
    assert b.pull(hq)["conflicts"] == 0
    assert b.rows() == hq.rows() == [(1, "hq", 1), (2, "hq", 0), (3, "hq", 0)]
    assert conflicts(hq) == conflicts(b) == []


def test_a_hub_passes_on_the_rows_it_copied_from_a_branch(sites):
    hq, b1, b2 = sites("hq", "b1", "b2")
    with_history(b1)                              # branch 1 joins with rows
    for branch in (b1, b2):
        link(hq, branch)
        link(branch, hq)
    hq.pull(b1)                                   # hq copies branch 1's rows ...
    hq.pull(b2)
    b2.pull(hq)                                   # ... and branch 2 gets them from hq
    b1.pull(hq)
    assert hq.rows() == b1.rows() == b2.rows() and len(hq.rows()) == 3
    assert b1.pull(hq)["fetched"] == 0            # never back to where they came from
    b2.sql("UPDATE item SET v = 'b2' WHERE id IN (1, 3)")
    hq.pull(b2)
    assert b1.pull(hq)["conflicts"] == 0
    assert hq.rows() == b1.rows() == b2.rows()
    assert conflicts(hq) == conflicts(b1) == conflicts(b2) == []


def divergence(a, b):
    """The rows the sites disagree on, with each site's log and conflicts of those keys."""
    ra, rb = dict((r[0], r) for r in a.rows()), dict((r[0], r) for r in b.rows())
    keys = sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k))[:5]
    out = []
    for k in keys:
        out.append(f"key {k}: a {ra.get(k)} b {rb.get(k)}")
        for s in (a, b):
            pk = '{"id" : %d}' % k
            for r in s.sql("SELECT id, op, pk::text, old_pk::text, row::text, origin::text,"
                           " origin_id, origin_at, via::text FROM tdgl.change_log"
                           " WHERE pk::text = %s OR old_pk::text = %s ORDER BY id", (pk, pk)):
                out.append(f"  {s.name} log {r}")
            for r in s.sql("SELECT status, resolution, decided_by, op, version::text FROM"
                           " tdgl_replica.conflicts WHERE pk = %s::jsonb ORDER BY id",
                           ('{"id": %d}' % k,)):
                out.append(f"  {s.name} conflict {r}")
            for r in s.sql("SELECT source, run_id, change_id, op, status, reason FROM"
                           " tdgl_replica.sync_entries WHERE pk = %s::jsonb ORDER BY id, seq",
                           ('{"id": %d}' % k,)):
                out.append(f"  {s.name} sync_log {r}")
    return "\n".join(out)


def write_hard(site, seed, stop, fresh_base):
    """One writer: updates, deletes and re-inserts of a few hot rows both sites write, new
    rows, and key changes of hot rows to keys only this writer uses."""
    rnd = random.Random(seed)
    conn = site.p.cluster.connect(site.p.dbname)
    fresh = fresh_base
    done = 0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                k, x = rnd.randint(1, 6), rnd.random()
                try:
                    if x < 0.45:
                        cur.execute("UPDATE item SET v = %s, n = n + 1 WHERE id = %s",
                                    (f"{site.name}{seed}", k))
                    elif x < 0.6:
                        cur.execute("DELETE FROM item WHERE id = %s", (k,))
                    elif x < 0.8:
                        cur.execute("INSERT INTO item VALUES (%s, %s) ON CONFLICT (id) DO UPDATE"
                                    " SET v = EXCLUDED.v", (k, f"re-{site.name}{seed}"))
                    elif x < 0.9:
                        fresh += 1
                        cur.execute("INSERT INTO item VALUES (%s, 'new')", (fresh,))
                    else:
                        fresh += 1
                        cur.execute("UPDATE item SET id = %s WHERE id = %s", (fresh, k))
                    done += 1
                except psycopg2.errors.DeadlockDetected:
                    pass
                stop.wait(0.005)      # a busy office, not a bulk load: ~150 writes/s each
    finally:
        conn.close()
    return done


def serve_joined(*sites):
    """Starts each site's tdgl-replica and waits for every initial sync: the sites join
    before anyone writes (their copies then hold nothing anyone could change meanwhile)."""
    for s in sites:
        s.r.serve()
    for s in sites:
        wait_until(lambda s=s: s.one("SELECT bool_and(cursor IS NOT NULL) FROM"
                                     " tdgl_replica.sources"), what=f"{s.name}'s initial syncs")


def write_for(seconds, *writers):
    """Runs write_hard for each (site, seed, fresh key base) at once for `seconds`."""
    stop = threading.Event()
    threads = [threading.Thread(target=write_hard, args=(s, seed, stop, base))
               for s, seed, base in writers]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()


@pytest.mark.parametrize("policies", [("latest-wins", "latest-wins"),
                                      ("source-wins", "local-wins")])
def test_concurrent_writers_on_both_sites_converge(sites, policies):
    a, b = sites("a", "b")
    link(a, b, policies[0], "--long-poll")
    link(b, a, policies[1], "--long-poll")
    serve_joined(a, b)
    write_for(8, (a, 1, 100000), (a, 2, 200000), (b, 3, 300000), (b, 4, 400000))
    try:
        wait_until(lambda: a.rows() == b.rows(), timeout=60, what="both sites to hold the same rows")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{divergence(a, b)}") from None
    logged = (a.one("SELECT count(*) FROM tdgl.change_log"),
              b.one("SELECT count(*) FROM tdgl.change_log"))
    time.sleep(2)                         # and they stay so: nothing ping-pongs
    assert a.rows() == b.rows()
    assert (a.one("SELECT count(*) FROM tdgl.change_log"),
            b.one("SELECT count(*) FROM tdgl.change_log")) == logged
    for s, peer in ((a, b), (b, a)):
        # a log holds its own writes and the peer's it applied, each once; never its own back
        assert s.one("SELECT count(*) FROM tdgl.change_log WHERE origin = %s", (s.id,)) == 0
        assert s.one("SELECT count(*) FROM tdgl.change_log WHERE origin IS NOT NULL AND"
                     " (origin <> %s OR via IS DISTINCT FROM %s)", (peer.id, peer.id)) == 0
        assert s.one("SELECT count(*) - count(DISTINCT origin_id) FROM tdgl.change_log"
                     " WHERE origin IS NOT NULL") == 0
        assert s.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE status = 'Failed'") == 0
    if policies == ("source-wins", "local-wins"):
        assert b.one("SELECT count(*) FROM tdgl_replica.conflicts WHERE resolution ="
                     " 'Accept Primary'") == 0, "b wins on both sides"


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_latest_wins_goes_by_the_origin_sites_clock_and_still_converges(sites, own_cluster):
    """Site b's clock is ten minutes slow. latest-wins compares the clocks of the sites where
    the versions were made (each change's origin time), so b's edit, made after a's in real
    time, is the older one: both sites agree on a's, and stay agreed."""
    slow = own_cluster("slow", {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "-10m"})
    (a,) = sites("a")
    (b,) = sites("b", cluster=slow)
    assert b.one("SELECT extract(epoch FROM now())") < a.one("SELECT extract(epoch FROM now())") - 500
    link(a, b, "latest-wins")
    link(b, a, "latest-wins")
    a.pull(b)
    b.pull(a)
    a.sql("INSERT INTO item VALUES (1, 'base')")
    b.pull(a)
    a.sql("UPDATE item SET v = 'a, earlier' WHERE id = 1")
    b.sql("UPDATE item SET v = 'b, later but with a slow clock' WHERE id = 1")
    a.pull(b)
    b.pull(a)
    assert a.rows() == b.rows() == [(1, "a, earlier", 0)]
    assert conflicts(a) == [("Resolved", "Keep Local", "latest-wins")]
    assert conflicts(b) == [("Resolved", "Accept Primary", "latest-wins")]
    b.sql("UPDATE item SET v = 'b, after seeing a' WHERE id = 1")   # not concurrent: applies
    assert a.pull(b)["conflicts"] == 0
    assert a.rows() == b.rows() == [(1, "b, after seeing a", 0)]


def test_the_conflict_policy_is_set_per_source_and_per_table_and_shown(sites):
    a, b = sites("a", "b")
    link(a, b, "latest-wins")
    show = json.loads(a.r.cli("source", "show", "b").stdout)
    assert show["conflict_policy"] == "latest-wins" and show["site"] == a.id
    assert [(t["table"], t["two_way"], t["conflict_policy"]) for t in show["tables"]] == \
        [("item", True, "latest-wins")]
    a.r.cli("source", "set", "b", "--table", "item", "--conflict-policy", "local-wins")
    assert a.one("SELECT tdgl_replica.conflict_policy('b', 'item')") == "local-wins"
    a.r.cli("source", "set", "b", "--table", "item", "--conflict-policy", "source")
    a.r.cli("source", "set", "b", "--conflict-policy", "source-wins")
    assert a.one("SELECT tdgl_replica.conflict_policy('b', 'item')") == "source-wins"
    for bad in (["--conflict-policy", "newest"], ["--conflict-policy", "source"]):
        p = a.r.cli("source", "set", "b", *bad, check=False)
        assert p.returncode == 2 and "--conflict-policy must be" in p.stderr, p.stderr
    p = a.r.cli("source", "add", "c", "--url", "http://127.0.0.1:9", "--key", "k", "--secret",
                "s", "--tables", "item", "--conflict-policy", "mine", check=False)
    assert p.returncode == 2 and a.one("SELECT count(*) FROM tdgl_replica.sources") == 1
    assert f"site: {a.id}" in a.r.cli("status").stdout.splitlines()
    # the admin API: the same settings, the same checks
    a.r.serve()
    r = a.r.api("PATCH", "/api/sources/b", json={"conflict_policy": "manual"})
    assert r.status_code == 200 and r.json()["conflict_policy"] == "manual", r.text
    r = a.r.api("PATCH", "/api/sources/b", json={"table": "item", "conflict_policy": "x"})
    assert r.status_code == 400 and "conflict_policy" in r.json()["error"], r.text
    assert a.r.api("GET", "/api/status").json()["site"] == a.id
    # a one-way source's table is not two-way: b's table is not tracked by a primary there
    (c,) = sites("c")
    c.p.sql("SELECT tdgl.untrack('item')")
    link(c, a)
    assert json.loads(c.r.cli("source", "show", "a").stdout)["tables"][0]["two_way"] is False


def test_hub_and_spoke_converges_under_writers_on_every_site(sites):
    """Head office and two branches, latest-wins on every link, writers on all three sites at
    once: every change reaches every site through the head office, and all three agree."""
    hq, b1, b2 = sites("hq", "b1", "b2")
    for branch in (b1, b2):
        link(hq, branch, "latest-wins", "--long-poll")
        link(branch, hq, "latest-wins", "--long-poll")
    serve_joined(hq, b1, b2)
    write_for(6, (hq, 1, 100000), (b1, 2, 200000), (b2, 3, 300000))
    try:
        wait_until(lambda: hq.rows() == b1.rows() == b2.rows(), timeout=60,
                   what="the three sites to hold the same rows")
    except AssertionError as e:
        raise AssertionError(f"{e}\nhq/b1:\n{divergence(hq, b1)}\nhq/b2:\n"
                             f"{divergence(hq, b2)}") from None
    for s in (hq, b1, b2):
        # each change once per site: never one of its own back, no version twice
        assert s.one("SELECT count(*) FROM tdgl.change_log WHERE origin = %s", (s.id,)) == 0
        assert s.one("SELECT count(*) - count(DISTINCT (origin, origin_id)) FROM tdgl.change_log"
                     " WHERE origin IS NOT NULL") == 0
        assert s.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE status = 'Failed'") == 0

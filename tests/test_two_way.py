"""Two-way sync (docs/design.md "Two-way sync"): what a site serves to a peer that syncs
with it in both directions. A change knows its origin (the site it was made on) and the
version of its row it replaced (its base); a peer is never served its own changes, nor those
this site applied from it."""
import uuid

PEER = str(uuid.uuid4())
OTHER = str(uuid.uuid4())


def peer_page(primary, key, secret, **params):
    r = primary.get("/api/changes", key, secret, **params)
    assert r.status_code == 200, r.text
    return r.json()["changes"]


def test_a_peer_is_not_served_what_came_from_it(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    primary.track("t")
    primary.serve()
    key, secret = primary.keygen()
    site = primary.one("SELECT id::text FROM tdgl.site_identity")
    primary.sql("INSERT INTO t VALUES (1, 'made here')")
    # what an apply session logs for changes it applied from peers (origin, id there, via)
    primary.sql("INSERT INTO tdgl.change_log (tbl, op, pk, row, origin, origin_id, origin_at,"
                " via) VALUES ('t', 'Create', '{\"id\":2}', '{\"id\":2,\"v\":\"peer\"}',"
                " %s, 40, now(), %s), ('t', 'Create', '{\"id\":3}', '{\"id\":3,\"v\":\"other\"}',"
                " %s, 41, now(), %s), ('t', 'Create', '{\"id\":4}',"
                " '{\"id\":4,\"v\":\"other via peer\"}', %s, 42, now(), %s)",
                (PEER, PEER, OTHER, OTHER, OTHER, PEER))
    served = peer_page(primary, key, secret, peer=PEER)
    assert [(c["pk"]["id"], c["origin"]) for c in served] == [(1, site), (3, OTHER)]
    assert served[1]["origin_id"] == 41
    # a one-way replica gets everything, in the shape it always had
    plain = peer_page(primary, key, secret)
    assert [c["pk"]["id"] for c in plain] == [1, 2, 3, 4]
    assert "origin" not in plain[0] and "base" not in plain[0]


def test_each_change_names_the_version_it_replaced(primary):
    primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    primary.track("t")
    primary.sql("SELECT tdgl.enable_row_versions()")
    primary.serve()
    key, secret = primary.keygen()
    site = primary.one("SELECT id::text FROM tdgl.site_identity")
    primary.sql("INSERT INTO t VALUES (1, 'a')")
    primary.sql("UPDATE t SET v = 'b' WHERE id = 1")
    primary.sql("UPDATE t SET id = 2 WHERE id = 1")          # a key change
    primary.sql("INSERT INTO t VALUES (1, 're-inserted')")   # the old key again
    primary.sql("DELETE FROM t WHERE id = 2")
    ch = peer_page(primary, key, secret, peer=PEER)
    ids = [c["id"] for c in ch]
    assert [c["op"] for c in ch] == ["Create", "Update", "Rename", "Create", "Delete"]
    assert ch[0]["base"] is None                             # a new row replaced nothing
    assert ch[1]["base"] == {"origin": site, "id": ids[0]}
    assert ch[2]["base"] == {"origin": site, "id": ids[1]}   # the rename replaced key 1's
    assert ch[3]["base"] == {"origin": site, "id": ids[2]}   # key 1 was renamed away
    assert ch[4]["base"] == {"origin": site, "id": ids[2]}   # key 2 came from the rename
    assert all(c["origin"] == site and c["origin_id"] == c["id"] for c in ch)


def test_a_peer_that_is_not_a_site_identity_is_refused(primary):
    primary.serve()
    key, secret = primary.keygen()
    for bad in ("x", PEER[:-1], PEER + "0", PEER.replace("-", "_"), "'; DROP TABLE t; --"):
        r = primary.get("/api/changes", key, secret, peer=bad)
        assert r.status_code == 400 and "site identity" in r.json()["error"], (bad, r.text)

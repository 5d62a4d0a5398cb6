"""Page queries under load: long-polls woken at one cursor share one page query (a single
flight), a cap on page queries running at once with a queue and 503 + Retry-After past it,
and a replica facing that answer still catching up. A table lock held by the test keeps a
page query in flight (it reads tdgl.meta, which the capture trigger never touches), so
what shares it and what queues behind it is decided by the test, not by timing. Every
connection of the primary's pool is opened first (warm_pool): a connection opened while
tdgl.meta is locked would block in its session setup (it prepares the page query)."""
import http.client
import json
import threading

import pytest
import requests

from harness import wait_until
from test_primary import drain, serve_with_key
from test_replica import CUSTOMER, rows_md5
from test_replica_serve import source_ready


def metric(site, name):
    text = site.get("/metrics", site.key, site.secret).text
    return int(float([ln for ln in text.splitlines() if ln.startswith(name + " ")][0].split()[1]))


@pytest.fixture
def served(primary):
    """A factory: a serving primary (extra serve options) with a tracked customer table."""
    primary.sql("CREATE TABLE customer (id int PRIMARY KEY, name text,"
                " docstatus int NOT NULL DEFAULT 0)")
    primary.track("customer")
    return lambda *args: serve_with_key(primary, *args)


class MetaLock:
    """Holds tdgl.meta exclusively: every page query blocks in flight until release()."""

    def __init__(self, site):
        self.conn = site.cluster.connect(site.dbname, autocommit=False)
        with self.conn.cursor() as cur:
            cur.execute("LOCK TABLE tdgl.meta IN ACCESS EXCLUSIVE MODE")

    def release(self):
        self.conn.rollback()
        self.conn.close()


def warm_pool(site, size=8):
    """Opens every connection of the pool (--pool-size, 8): size row requests held at once
    by a lock on the customer table, which a page query never reads."""
    conn = site.cluster.connect(site.dbname, autocommit=False)
    results = [None] * size
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, site.get(
            "/api/rows", site.key, site.secret, table="customer"))) for i in range(size)]
        for t in threads:
            t.start()
        wait_until(lambda: site.one("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                    "relation = 'customer'::regclass") == size,
                   what="every pool connection busy")
    finally:
        conn.rollback()
        conn.close()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200] * size


def warm_watcher(site, insert):
    """Lets the watcher take its first look (which wakes every waiter: it has nothing to
    compare with yet) with one long-poll, ended by insert(); returns the cursor after it.
    Later wakes are then commits only. Warms the pool too."""
    warm_pool(site)
    _, cursor = drain(site)
    def asked():    # queried, or went straight to waiting at a head (heads.h)
        return (metric(site, "tdgl_page_queries_total")
                + metric(site, "tdgl_page_queries_skipped_total"))
    before = asked()
    out = [None]
    t = get_async(site, out, 0, cursor=cursor, wait=30)
    wait_until(lambda: asked() >= before + 2, what="the watcher's first look")
    insert()
    t.join(30)
    assert out[0].status_code == 200
    return drain(site)[1]


def get_async(site, results, i, **params):
    def go():
        results[i] = site.get("/api/changes", site.key, site.secret, **params)
    t = threading.Thread(target=go)
    t.start()
    return t


def test_waiters_at_one_cursor_share_one_page_query_per_wake(served):
    site = served("--max-waits-per-key", "64")
    n = 20
    cursor = warm_watcher(site, lambda: site.sql("INSERT INTO customer VALUES (0, 'w', 0)"))
    results = [None] * n
    threads = [get_async(site, results, i, cursor=cursor, wait=30) for i in range(n)]
    wait_until(lambda: metric(site, "tdgl_longpoll_waiters") == n, what=f"{n} waiters")
    before = metric(site, "tdgl_page_queries_total")
    lock = MetaLock(site)
    try:
        site.sql("INSERT INTO customer VALUES (1, 'one commit', 0)")
        # one waiter runs the page query (blocked on the lock), every other one waits for it
        wait_until(lambda: metric(site, "tdgl_page_queries_joined") == n - 1,
                   what="the other waiters to join the first one's page query")
    finally:
        lock.release()
    for t in threads:
        t.join(30)
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert len({r.content for r in results}) == 1, "the pages differ"
    assert [c["pk"] for c in results[0].json()["changes"]] == [{"id": 1}]
    assert metric(site, "tdgl_page_queries_total") - before == 1
    assert metric(site, "tdgl_page_queries_shared_total") >= n - 1


def test_an_error_in_a_shared_page_query_is_every_sharers_error(served):
    site = served()
    n = 5
    cursor = warm_watcher(site, lambda: site.sql("INSERT INTO customer VALUES (0, 'w', 0)"))
    results = [None] * n
    threads = [get_async(site, results, i, cursor=cursor, wait=30) for i in range(n)]
    wait_until(lambda: metric(site, "tdgl_longpoll_waiters") == n, what=f"{n} waiters")
    lock = MetaLock(site)
    try:
        site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
        wait_until(lambda: metric(site, "tdgl_page_queries_joined") == n - 1, what="sharers")
        # the sharers can all have joined before the leader's query reached the lock
        wait_until(lambda: site.one("SELECT count(*) FROM pg_locks l WHERE l.relation ="
                                    " 'tdgl.meta'::regclass AND NOT l.granted") == 1,
                   what="the page query waiting on tdgl.meta")
        # the page query's connection dies under it
        assert site.one("SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
                        "WHERE l.relation = 'tdgl.meta'::regclass AND NOT l.granted") == 1
        for t in threads:
            t.join(30)
    finally:
        lock.release()
    assert [r.status_code for r in results] == [503] * n
    assert all(r.json() == {"error": "database error"} for r in results)
    ch, _ = drain(site, cursor)      # the next query runs on a healthy connection
    assert [c["pk"] for c in ch] == [{"id": 1}]


def test_a_sharer_whose_client_goes_away_does_not_break_the_others(served):
    """Five long-polls share the page query of one commit; four clients go away while it
    runs (the one running it among them four times in five): the fifth gets its page."""
    site = served()
    cursor = warm_watcher(site, lambda: site.sql("INSERT INTO customer VALUES (0, 'w', 0)"))
    conns = [http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=30)
             for _ in range(5)]
    for c in conns:
        c.request("GET", f"/api/changes?cursor={cursor}&wait=30",
                  headers={"Authorization": f"token {site.key}:{site.secret}"})
    wait_until(lambda: metric(site, "tdgl_longpoll_waiters") == 5, what="five waiters")
    before = metric(site, "tdgl_page_queries_total")
    lock = MetaLock(site)
    try:
        site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
        wait_until(lambda: metric(site, "tdgl_page_queries_joined") == 4, what="sharers")
        for c in conns[:4]:
            c.close()
    finally:
        lock.release()
    r = conns[4].getresponse()
    assert r.status == 200
    assert [c["pk"] for c in json.loads(r.read())["changes"]] == [{"id": 1}]
    conns[4].close()
    assert metric(site, "tdgl_page_queries_total") - before == 1


def test_a_request_after_a_commit_never_shares_a_page_query_started_before_it(served):
    """A page query that took its snapshot before a commit is not shared with a request that
    arrived after the commit: a client that commits, then asks, sees its commit."""
    site = served()
    warm_pool(site)
    _, cursor = drain(site)
    lock = MetaLock(site)
    results = [None] * 2
    try:
        first = get_async(site, results, 0, cursor=cursor)
        wait_until(lambda: site.one("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                    "relation = 'tdgl.meta'::regclass") == 1,
                   what="the first query past its snapshot")
        site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
        second = get_async(site, results, 1, cursor=cursor)
        wait_until(lambda: site.one("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                    "relation = 'tdgl.meta'::regclass") == 2,
                   what="the second request's own query")
    finally:
        lock.release()
    first.join(30)
    second.join(30)
    assert results[0].json()["changes"] == []
    assert [c["pk"] for c in results[1].json()["changes"]] == [{"id": 1}]


def test_page_queries_over_the_cap_and_its_queue_get_503_with_retry_after(served):
    site = served("--max-page-queries", "1", "--page-queue", "1")
    warm_pool(site)
    _, cursor = drain(site)
    site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
    lock = MetaLock(site)
    results = [None] * 4
    threads = []
    try:
        # distinct limits: distinct pages, no sharing
        threads.append(get_async(site, results, 0, cursor=cursor, limit=10))
        wait_until(lambda: metric(site, "tdgl_page_queries_running") == 1, what="one running")
        threads.append(get_async(site, results, 1, cursor=cursor, limit=11))
        wait_until(lambda: metric(site, "tdgl_page_queries_queued") == 1, what="one queued")
        for i in (2, 3):
            threads.append(get_async(site, results, i, cursor=cursor, limit=10 + i))
            threads[-1].join(30)
    finally:
        lock.release()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200, 200, 503, 503]
    for r in results[2:]:
        assert r.headers["Retry-After"] == "1"
        assert r.json() == {"error": "too many page queries waiting"}
    assert metric(site, "tdgl_page_queries_rejected_total") == 2
    assert metric(site, "tdgl_page_queries_queued") == 0


def test_a_long_polling_replica_facing_a_full_page_queue_catches_up(primary, replica):
    primary.sql(CUSTOMER)
    primary.track("customer")
    site = serve_with_key(primary, "--max-page-queries", "1", "--page-queue", "0")
    warm_watcher(site, lambda: primary.sql("INSERT INTO customer VALUES (0, 'w', 'X', 0)"))
    replica.sql(CUSTOMER)
    replica.cli("source", "add", "main", "--url", site.url, "--key", site.key, "--secret",
                site.secret, "--tables", "customer", "--long-poll", "--batch-size", "50")
    replica.serve()
    source_ready(replica)
    # A request of the test's takes the one slot and blocks in it; decided by state, not
    # time: if the replica's own query got the slot first (its long-poll's deadline), the
    # test's request was turned away instead, and the round is done again.
    for _ in range(5):
        wait_until(lambda: metric(site, "tdgl_longpoll_waiters") == 1, what="the replica's poll")
        lock = MetaLock(primary)
        held = [None]
        holder = get_async(site, held, 0, limit=7)      # from the start: a page of its own
        wait_until(lambda: primary.one("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                       "relation = 'tdgl.meta'::regclass") == 1,
                   what="a page query holding the slot")
        if metric(site, "tdgl_longpoll_waiters") == 1:
            break                       # the replica waits: the blocked query is the test's
        lock.release()
        holder.join(30)
    else:
        pytest.fail("the replica's query held the slot five times")
    try:
        rejected = metric(site, "tdgl_page_queries_rejected_total")   # earlier rounds'
        for i in range(1, 301):
            primary.sql("INSERT INTO customer VALUES (%s, 'n', 'X', %s)", (i, i))
        # the replica's long-poll wakes, finds no slot and no queue: 503 + Retry-After
        wait_until(lambda: metric(site, "tdgl_page_queries_rejected_total") > rejected,
                   what="the replica turned away")
    finally:
        lock.release()
    holder.join(30)
    assert held[0].status_code == 200
    wait_until(lambda: rows_md5(replica, "customer") == rows_md5(primary, "customer"),
               timeout=60, what="the replica to catch up")
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE change_id IS NOT NULL") == 300
    assert "primary answered 503" in replica.server.log()
    assert replica.sql("SELECT change_id FROM tdgl_replica.sync_entries WHERE change_id IS NOT NULL "
                       "GROUP BY change_id HAVING count(*) <> 1") == []
    assert replica.one("SELECT count(*) FROM tdgl_replica.runs WHERE status = 'Failed'") == 0


def test_a_long_poll_back_at_the_cursor_a_page_ended_at_waits_without_a_query(served):
    """Nothing became visible since the page was read (the watch generation holds): the
    long-poll coming back with its cursor goes straight to waiting, and still gets the next
    commit."""
    site = served()
    cursor = warm_watcher(site, lambda: site.sql("INSERT INTO customer VALUES (0, 'w', 0)"))
    site.sql("INSERT INTO customer VALUES (1, 'x', 0)")
    r = site.get("/api/changes", site.key, site.secret, cursor=cursor)
    assert [c["pk"] for c in r.json()["changes"]] == [{"id": 1}] and not r.json()["more"]
    skipped = metric(site, "tdgl_page_queries_skipped_total")
    out = [None]
    t = get_async(site, out, 0, cursor=r.json()["cursor"], wait=30)
    wait_until(lambda: metric(site, "tdgl_longpoll_waiters") == 1, what="the long-poll waiting")
    assert metric(site, "tdgl_page_queries_skipped_total") == skipped + 1
    site.sql("INSERT INTO customer VALUES (2, 'y', 0)")
    t.join(30)
    assert [c["pk"] for c in out[0].json()["changes"]] == [{"id": 2}]

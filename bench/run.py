#!/usr/bin/python3
"""make bench: tdgl-streaming against PostgreSQL's native logical replication, same run.

Sets up two local sites (bench/sites.py), runs the figures of issue 6 on the customer workload,
prints each figure with the reference measured in the same run and their ratio, and writes the
results into BENCHMARKS.md (between the bench markers) and bench/results/.

Sizes: BENCH_SCALE (default 0.2) scales the issue's sizes (1M-row insert and initial sync,
100k transactions, 200k queued changes, 1M backlog). BENCH_SCALE=1 is the issue's full size.
--figures 1,3,8 runs a subset (9: verify, 10: ERP, 11: console log pages, 12: fan-out to
BENCH_REPLICAS replicas, default 50; 13: their initial syncs at once; 14: two-way sync). BENCH_LOG_SIZES=10000,100000,1000000 sets
figure 8's log sizes (and figure 11's: the replica's sync log under the console's log pages).
BENCH_BATCH sets the replicas' page size (default: the source default, 2000) to compare.
BENCH_DIR is the work directory (default /tmp/tdgl-bench; two benchmarks at once need two).
Benchmarks, not tests: nothing here asserts a time; a missed target is reported, not failed.
"""
import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sites import (PG_BIN, ROOT, ROW_EXPR, Bench, Db, vm_hwm_kb, vm_rss_kb,  # noqa: E402
                   wait_until)

RESULTS = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def record(fig, what, value, unit, ref=None, ref_label="", target="", met=None, note=""):
    """One figure line: the tdgl value, the reference of the same run, their ratio."""
    ratio = (value / ref) if (ref not in (None, 0) and value is not None) else None
    r = {"fig": fig, "what": what, "value": value, "unit": unit, "ref": ref,
         "ref_label": ref_label, "ratio": ratio, "target": target, "met": met, "note": note}
    RESULTS.append(r)
    fmt = lambda v: "-" if v is None else (f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}")  # noqa
    print(f"  fig {fig}: {what}: {fmt(value)} {unit}"
          + (f" | ref {ref_label}: {fmt(ref)} {unit}" if ref is not None else "")
          + (f" | ratio {ratio:.2f}" if ratio is not None else "")
          + (f" | target {target}: {'MET' if met else 'MISSED'}" if met is not None else ""),
          flush=True)
    return r


def insert_rows(db, first, n, chunk=200000):
    """Inserts rows first..first+n-1, in chunks (each chunk one transaction)."""
    for lo in range(first, first + n, chunk):
        hi = min(first + n - 1, lo + chunk - 1)
        db.sql(f"INSERT INTO customer SELECT {ROW_EXPR} FROM generate_series(%s, %s) g",
               (lo, hi))


def pgbench(cluster, db, script, clients=4, seconds=None, transactions=None, sync_commit=True):
    """Runs pgbench with a custom script; returns (tps, elapsed seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
        path = f.name
    os.chmod(path, 0o644)
    cmd = [f"{PG_BIN}/pgbench", "-n", "-f", path, "-c", str(clients), "-j", str(min(clients, 2)),
           "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", db]
    cmd += ["-T", str(seconds)] if seconds else ["-t", str(transactions // clients)]
    env = dict(os.environ, PGOPTIONS=f"-c synchronous_commit={'on' if sync_commit else 'off'}")
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    el = time.monotonic() - t0
    os.unlink(path)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr}")
    for line in out.stdout.splitlines():
        if line.startswith("tps =") and "without initial" in line:
            return float(line.split()[2]), el
    raise RuntimeError(f"pgbench output without tps: {out.stdout}")


INSERT_SQL = ("INSERT INTO customer SELECT " + ROW_EXPR.replace("%%", "%")
              + " FROM (SELECT nextval('customer_id_seq') AS g) s;\n")


def update_sql(n):
    return (f"\\set id random(1, {n})\n"
            "UPDATE customer SET balance = balance + 1, updated_at = now() WHERE id = :id;\n")


def wait_row(db, rid, timeout, interval=0.002):
    """Polls until row rid exists on db; returns the monotonic time it was seen."""
    wait_until(lambda: db.one("SELECT 1 FROM customer WHERE id = %s", (rid,)), timeout,
               interval, f"row {rid} on {db.name}")
    return time.monotonic()


def marker(db, rid):
    db.sql(f"INSERT INTO customer SELECT {ROW_EXPR} FROM (SELECT %s::bigint AS g) s", (rid,))


def batch_flags():
    """The replica's page size: its default (what users run), or BENCH_BATCH to compare."""
    n = os.environ.get("BENCH_BATCH")
    return ["--batch-size", n] if n else []


def tdgl_pair(b, name, flags=("--long-poll",), rows=0, push=False):
    """A tdgl primary db `name` (customer tracked, `rows` rows) served by tdgl-primary, and a
    replica db `name` with source main, initial sync done, tdgl-replica running."""
    b.primary.createdb(name)
    p = Db(b.primary, name)
    if rows:
        insert_rows(p, 1, rows)
    p.sql("SELECT setval('customer_id_seq', %s)", (max(rows, 1) + 10,))
    key, secret = b.primary_setup(name)
    b.replica.createdb(name)
    rci = b.replica.conninfo(name)
    b.cli("tdgl-replica", rci, "migrate")
    rep = b.start_replica(name)
    extra = list(flags) + batch_flags()
    if push:
        # the notifier loads its targets at start: add the target first
        push_secret = "bench-push-secret-0123456789"
        extra += ["--push-secret", push_secret]
        b.cli("tdgl-primary", b.primary.conninfo(name), "push", "add", rep.url,
              "--secret", push_secret)
    prim = b.start_primary(name)
    b.cli("tdgl-replica", rci, "source", "add", "main", "--url", prim.url, "--key", key,
          "--secret", secret, "--tables", "customer", "--poll-interval", "3600", *extra)
    r = Db(b.replica, name)
    # trigger the initial sync now rather than waiting for the schedule
    requests.post(rep.url + "/api/sources/main/pull",
                  headers={"Authorization": f"Bearer {b.admin_token}"}, timeout=600)
    wait_until(lambda: r.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources WHERE name = 'main'"),
               600, 0.05, "initial sync")
    wait_until(lambda: r.one("SELECT count(*) FROM customer") == rows, 600, 0.05, "copy")
    return p, r, prim, rep, key, secret


def native_pair(b, name, rows=0):
    b.primary.createdb(name)
    b.replica.createdb(name)
    p, r = Db(b.primary, name), Db(b.replica, name)
    if rows:
        insert_rows(p, 1, rows)
        insert_rows(r, 1, rows)
    p.sql("SELECT setval('customer_id_seq', %s)", (max(rows, 1) + 10,))
    b.native_subscribe(name)
    return p, r


# ------------------------------------------------------------------------------------------
def fig1(b, sz):
    """Capture cost: pgbench single-row INSERT/UPDATE TPS, 4 clients, tracked vs untracked."""
    log("figure 1: capture cost (pgbench, 4 clients)")
    b.primary.createdb("f1")
    d = Db(b.primary, "f1")
    n = 100000
    insert_rows(d, 1, n)
    d.sql("SELECT setval('customer_id_seq', %s)", (n + 10,))
    b.primary_setup("f1")
    # the issue's reference: a plain plpgsql row trigger writing to_jsonb to a log
    d.sql("""
        CREATE TABLE ref_log (id bigserial PRIMARY KEY, tbl text, op text, row jsonb,
                              at timestamptz DEFAULT now());
        CREATE FUNCTION ref_capture() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO ref_log (tbl, op, row) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
            RETURN NULL;
        END $$;
        CREATE TRIGGER ref_capture AFTER INSERT OR UPDATE OR DELETE ON customer
            FOR EACH ROW EXECUTE FUNCTION ref_capture();""")
    d.sql("VACUUM ANALYZE customer")

    def mode(m):
        for t in ("tdgl_capture_insert", "tdgl_capture_update", "tdgl_capture_delete"):
            d.sql("ALTER TABLE customer " + ("ENABLE" if m == "tdgl" else "DISABLE")
                  + " TRIGGER " + t)
        d.sql("ALTER TABLE customer " + ("ENABLE" if m == "plain" else "DISABLE")
              + " TRIGGER ref_capture")

    secs = sz["pgbench_s"]
    for sc in (False, True):
        for op, script in (("INSERT", INSERT_SQL), ("UPDATE", update_sql(n))):
            tps = {}
            for m in ("untracked", "plain", "tdgl", "untracked2"):
                mode(m.rstrip("2"))
                d.sql("CHECKPOINT")
                tps[m], _ = pgbench(b.primary, "f1", script, seconds=secs, sync_commit=sc)
            base = (tps["untracked"] + tps["untracked2"]) / 2
            scs = "on" if sc else "off"
            ratio = tps["tdgl"] / base
            record(1, f"{op} TPS tracked, synchronous_commit={scs}", tps["tdgl"], "tps",
                   base, "untracked", "ratio >= 0.80 (off)" if not sc else "",
                   (ratio >= 0.80) if not sc else None,
                   note=f"plain to_jsonb trigger: {tps['plain']:.0f} tps "
                        f"(ratio {tps['plain'] / base:.2f}); untracked runs "
                        f"{tps['untracked']:.0f}/{tps['untracked2']:.0f}")
    mode("untracked")
    d.close()


def fig2(b, sz):
    """100k single-row transactions with the replica running: TPS ratio and lag after."""
    txns = sz["txns"]
    log(f"figure 2: {txns} single-row INSERT transactions (4 clients) with replication running")
    b.primary.createdb("f2plain")
    d = Db(b.primary, "f2plain")
    d.sql("CHECKPOINT")
    base, _ = pgbench(b.primary, "f2plain", INSERT_SQL, transactions=txns)
    d.close()

    p, r, prim, rep, _, _ = tdgl_pair(b, "f2tdgl")
    p.sql("CHECKPOINT")
    tps, _ = pgbench(b.primary, "f2tdgl", INSERT_SQL, transactions=txns)
    t_end = time.monotonic()
    marker(p, -1)
    lag = wait_row(r, -1, 600) - t_end
    assert r.one("SELECT count(*) FROM customer") == txns + 1
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()

    np_, nr = native_pair(b, "f2native")
    np_.sql("CHECKPOINT")
    ntps, _ = pgbench(b.primary, "f2native", INSERT_SQL, transactions=txns)
    t_end = time.monotonic()
    marker(np_, -1)
    nlag = wait_row(nr, -1, 600) - t_end
    b.native_unsubscribe("f2native")
    np_.close(), nr.close()
    record(2, "source TPS ratio with replica running (tdgl)", tps / base, "x", ntps / base,
           "native", ">= 0.75", tps / base >= 0.75,
           note=f"no replication {base:.0f} tps, tdgl {tps:.0f}, native {ntps:.0f}")
    record(2, "lag after the load ends", lag, "s", nlag, "native", "<= 0.25 s", lag <= 0.25)


def fig3(b, sz):
    """One big INSERT: rows per second reaching the replica after commit."""
    n = sz["big"]
    log(f"figure 3: one {n}-row INSERT, rows/s reaching the replica after commit")
    p, r, prim, rep, _, _ = tdgl_pair(b, "f3tdgl")
    hwm0 = vm_hwm_kb(rep.pid)
    t_s = time.monotonic()
    p.sql(f"INSERT INTO customer SELECT {ROW_EXPR} FROM generate_series(1, %s) g", (n,))
    t_c = time.monotonic()
    t_v = wait_row(r, n, 1200, 0.01)
    assert r.one("SELECT count(*) FROM customer") == n
    rate = n / (t_v - t_c)
    rep_hwm = vm_hwm_kb(rep.pid)
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()

    np_, nr = native_pair(b, "f3native")
    t0 = time.monotonic()
    np_.sql(f"INSERT INTO customer SELECT {ROW_EXPR} FROM generate_series(1, %s) g", (n,))
    nt_c = time.monotonic()
    nt_v = wait_row(nr, n, 1200, 0.01)
    nrate = n / (nt_v - nt_c)
    b.native_unsubscribe("f3native")
    np_.close(), nr.close()
    record(3, f"one {n:,}-row INSERT: rows/s reaching the replica after commit", rate, "rows/s",
           nrate, "native", ">= 80k/s", rate >= 80000,
           note=f"tdgl {t_v - t_c:.2f} s after commit; native {nt_v - nt_c:.2f} s; "
                f"insert itself {t_c - t_s:.2f} s (native db {nt_c - t0:.2f} s); "
                f"replica peak RSS {hwm0 // 1024}->{rep_hwm // 1024} MB")


def latency_samples(p, r, n, gap=0.02):
    """n single-row commits on p; for each, the time until r shows it (ms)."""
    out = []
    for i in range(n):
        rid = (i % 50) + 1
        bal = p.one("UPDATE customer SET balance = balance + 1, updated_at = now() "
                    "WHERE id = %s RETURNING balance", (rid,))
        t_c = time.monotonic()
        wait_until(lambda: r.one("SELECT balance = %s FROM customer WHERE id = %s",
                                 (bal, rid)), 30, 0.0002, "latency sample")
        out.append((time.monotonic() - t_c) * 1000)
        time.sleep(gap)
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def fig4(b, sz):
    """Single-row commit -> visible on the replica, 200 samples, push and long-poll."""
    n = sz["samples"]
    log(f"figure 4: commit -> visible latency, {n} samples each (push, long-poll, native)")
    np_, nr = native_pair(b, "f4native", rows=100)
    lat_n = latency_samples(np_, nr, n)
    b.native_unsubscribe("f4native")
    np_.close(), nr.close()
    res = {}
    for m in ("push", "long-poll"):
        name = "f4" + m.replace("-", "")
        flags = ("--long-poll",) if m == "long-poll" else ()
        p, r, prim, rep, _, _ = tdgl_pair(b, name, flags=flags, rows=100, push=(m == "push"))
        res[m] = latency_samples(p, r, n)
        b.stop_proc(rep)
        b.stop_proc(prim)
        p.close(), r.close()
    for m, xs in res.items():
        p50, p95 = pct(xs, 50), pct(xs, 95)
        record(4, f"commit -> visible p50 ({m})", p50, "ms", pct(lat_n, 50), "native",
               "p50 <= 20 ms", p50 <= 20)
        record(4, f"commit -> visible p95 ({m})", p95, "ms", pct(lat_n, 95), "native",
               "p95 <= 100 ms", p95 <= 100, note=f"max {max(xs):.1f} ms")


def fig5(b, sz):
    """Initial sync of 1M rows against pg_dump -t customer | psql."""
    n = sz["big"]
    log(f"figure 5: initial sync of {n} rows vs pg_dump -t customer | psql")
    b.primary.createdb("f5")
    p = Db(b.primary, "f5")
    insert_rows(p, 1, n)
    p.sql("VACUUM ANALYZE customer")
    b.replica.createdb("f5dump", ddl=None)
    t0 = time.monotonic()
    subprocess.run(f"{PG_BIN}/pg_dump -h 127.0.0.1 -p {b.primary.port} -U postgres -t customer f5"
                   f" | {PG_BIN}/psql -X -q -h 127.0.0.1 -p {b.replica.port} -U postgres f5dump",
                   shell=True, check=True, stdout=subprocess.DEVNULL)
    t_dump = time.monotonic() - t0
    key, secret = b.primary_setup("f5")
    prim = b.start_primary("f5")
    b.replica_setup("f5", prim.url, key, secret, "--poll-interval", "3600")
    r = Db(b.replica, "f5")
    rep = b.start_replica("f5")
    t0 = time.monotonic()
    requests.post(rep.url + "/api/sources/main/pull",
                  headers={"Authorization": f"Bearer {b.admin_token}"}, timeout=5)
    wait_until(lambda: r.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources WHERE name = 'main'"),
               1800, 0.02, "initial sync")
    t_sync = time.monotonic() - t0
    assert r.one("SELECT count(*) FROM customer") == n
    hwm = vm_hwm_kb(rep.pid)
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()
    record(5, f"initial sync of {n:,} rows", t_sync, "s", t_dump, "pg_dump|psql", "<= 1.5x",
           t_sync <= 1.5 * t_dump, note=f"{n / t_sync:,.0f} rows/s; replica peak RSS "
                                       f"{hwm // 1024} MB")


def fig6(b, sz):
    """Applying queued changes (and fig 7's replica RSS, flat in backlog size)."""
    n = sz["queued"]
    log(f"figure 6/7: applying {n} queued changes (and replica peak RSS vs backlog size)")
    p, r, prim, rep, key, secret = tdgl_pair(b, "f6tdgl", rows=n)
    rates, hwms, db_us = {}, {}, {}
    for size in (max(n // 10, 1000), n):
        b.stop_proc(rep)
        # the backlog: `size` updates in transactions of 1000 rows
        for lo in range(1, size + 1, 1000):
            p.sql("UPDATE customer SET balance = balance + 1, updated_at = now() "
                  "WHERE id BETWEEN %s AND %s", (lo, min(size, lo + 999)))
        marker(p, -size)
        # the replica database's CPU per change: the bottleneck stage, and steadier than the
        # rate on a shared machine
        c0 = cluster_cpu_s(b.replica)
        t0 = time.monotonic()
        rep = b.start_replica("f6tdgl")
        wait_row(r, -size, 1800, 0.01)
        rates[size] = size / (time.monotonic() - t0)
        db_us[size] = (cluster_cpu_s(b.replica) - c0) / size * 1e6
        hwms[size] = vm_hwm_kb(rep.pid)
    # primary with 500 long-poll clients
    prim_idle = vm_rss_kb(prim.pid)
    prim_hwm = long_poll_clients(prim, key, secret, sz["clients"])
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()

    np_, nr = native_pair(b, "f6native", rows=n)
    nr.sql("ALTER SUBSCRIPTION bench_sub DISABLE")
    for lo in range(1, n + 1, 1000):
        np_.sql("UPDATE customer SET balance = balance + 1, updated_at = now() "
                "WHERE id BETWEEN %s AND %s", (lo, min(n, lo + 999)))
    marker(np_, -n)
    t0 = time.monotonic()
    nr.sql("ALTER SUBSCRIPTION bench_sub ENABLE")
    wait_row(nr, -n, 1800, 0.01)
    nrate = n / (time.monotonic() - t0)
    wpid = nr.one("SELECT pid FROM pg_stat_subscription WHERE subname = 'bench_sub'")
    whwm = vm_hwm_kb(wpid) if wpid else None
    b.native_unsubscribe("f6native")
    np_.close(), nr.close()
    record(6, f"applying {n:,} queued changes", rates[n], "changes/s", nrate, "native",
           ">= 60k/s", rates[n] >= 60000,
           note=f"backlog {min(rates)}: {rates[min(rates)]:,.0f}/s; includes replica start; "
           f"replica database CPU {db_us[n]:.1f} us a change")
    small, big = min(hwms), max(hwms)
    record(7, f"replica peak RSS catching up {big:,} changes", hwms[big] / 1024, "MB",
           (whwm / 1024) if whwm else None, "native apply worker", "<= 64 MB, flat",
           hwms[big] <= 64 * 1024 and hwms[big] <= hwms[small] * 1.25 + 4096,
           note=f"backlog {small:,}: {hwms[small] / 1024:.1f} MB")
    record(7, f"primary peak RSS with {sz['clients']} long-poll clients", prim_hwm / 1024, "MB",
           prim_idle / 1024, "same process idle", "<= 64 MB", prim_hwm <= 64 * 1024)


def head_cursor(prim, key, secret):
    """A cursor with nothing after it."""
    h = {"Authorization": f"token {key}:{secret}"}
    cur = requests.get(prim.url + "/api/snapshot", headers=h, timeout=30).json()["cursor"]
    while True:
        j = requests.get(prim.url + "/api/changes", headers=h, timeout=60,
                         params={"cursor": cur, "limit": 500}).json()
        if not j["changes"] and not j["more"]:
            return j["cursor"]
        cur = j["cursor"]


def long_poll_clients(prim, key, secret, n):
    """Opens n long-poll requests at once; returns the primary's peak RSS while they wait."""
    cur = head_cursor(prim, key, secret)
    host, port = prim.url.rsplit("/", 1)[1].split(":")
    req = (f"GET /api/changes?cursor={requests.utils.quote(cur, safe='')}&wait=20 HTTP/1.1\r\n"
           f"Host: {host}\r\nAuthorization: token {key}:{secret}\r\n\r\n").encode()
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection((host, int(port)))
            s.sendall(req)
            socks.append(s)
        time.sleep(3)   # let every request reach its wait (a measurement window, not a test)
        waiting = sum(1 for s in socks if not _readable(s))
        hwm = vm_hwm_kb(prim.pid)
        log(f"  {waiting}/{n} long-poll clients still waiting after 3 s")
    finally:
        for s in socks:
            s.close()
    return hwm


def _readable(s):
    import select
    return bool(select.select([s], [], [], 0)[0])


def fig8(b, sz):
    """Time per get_changes page as the log grows, and with one long transaction open."""
    log(f"figure 8: page time vs log size {sz['log_sizes']}")
    b.primary.createdb("f8")
    p = Db(b.primary, "f8")
    insert_rows(p, 1, 1000)
    key, secret = b.primary_setup("f8")
    prim = b.start_primary("f8")
    h = {"Authorization": f"token {key}:{secret}"}
    have = 0
    rows = []

    def page_ms(cur, reps=15):
        ts = []
        for _ in range(reps):
            t0 = time.monotonic()
            j = requests.get(prim.url + "/api/changes", headers=h, timeout=60,
                             params={"cursor": cur, "limit": 100}).json()
            ts.append((time.monotonic() - t0) * 1000)
            assert len(j["changes"]) == 100, len(j["changes"])
        return statistics.median(ts)

    def hundred():
        for i in range(10):
            p.sql("UPDATE customer SET balance = balance + 1 WHERE id BETWEEN %s AND %s",
                  (i * 10 + 1, i * 10 + 10))

    for size in sz["log_sizes"]:
        for lo in range(have, size, 1000000):
            hi = min(size, lo + 1000000)
            p.sql("INSERT INTO tdgl.change_log (tbl, op, pk, row) "
                  "SELECT 'customer', 'Update', json_build_object('id', g), "
                  f"row_to_json(c) FROM (SELECT {ROW_EXPR} FROM generate_series(%s, %s) g) c",
                  (lo + 1, hi))
        have = size
        p.sql("VACUUM ANALYZE tdgl.change_log")
        cur = head_cursor(prim, key, secret)
        hundred()
        plain = page_ms(cur)
        # one long transaction open: it holds a change and stays in every snapshot's xip list
        lt = b.primary.connect("f8", autocommit=False)
        with lt.cursor() as c:
            c.execute("UPDATE customer SET balance = balance + 1 WHERE id = 1000")
        cur = head_cursor(prim, key, secret)
        hundred()
        longtx = page_ms(cur)
        lt.rollback()
        lt.close()
        rows.append((size, plain, longtx))
        log(f"  log {size:,} rows: page {plain:.2f} ms; with a long transaction {longtx:.2f} ms")
    b.stop_proc(prim)
    p.close()
    first = rows[0]
    for size, plain, longtx in rows:
        record(8, f"page of 100 changes, log {size:,} rows", plain, "ms", first[1],
               f"log {first[0]:,} rows", "flat", plain <= first[1] * 2 + 2)
        record(8, f"... with a long transaction open, log {size:,} rows", longtx, "ms", first[2],
               f"log {first[0]:,} rows", "flat", longtx <= first[2] * 2 + 2)


# ERP-like schema of figure 10: an invoice (header), its lines (a key to the invoice), the
# ledger entries it posts (keys to the invoice and the account), the account's balance.
ERP_DDL = """
CREATE TABLE account (id int PRIMARY KEY, name text, balance numeric(14,2),
                      updated_at timestamptz);
CREATE TABLE invoice (id bigint PRIMARY KEY, account_id int NOT NULL REFERENCES account,
                      number text, total numeric(14,2), status text, created_at timestamptz);
CREATE TABLE invoice_line (id bigint PRIMARY KEY,
                           invoice_id bigint NOT NULL REFERENCES invoice ON DELETE CASCADE,
                           item text, qty int, price numeric(12,2), amount numeric(14,2));
CREATE TABLE ledger (id bigint PRIMARY KEY, invoice_id bigint NOT NULL REFERENCES invoice,
                     account_id int NOT NULL REFERENCES account, debit numeric(14,2),
                     credit numeric(14,2), memo text, posted_at timestamptz);
CREATE SEQUENCE invoice_id_seq; CREATE SEQUENCE invoice_line_id_seq;
CREATE SEQUENCE ledger_id_seq;
"""
ERP_TABLES = "account,invoice,invoice_line,ledger"
ERP_ACCOUNTS = int(os.environ.get("BENCH_ERP_ACCOUNTS", "1000"))
# One transaction: 1 invoice, 5 lines, 5 ledger entries, 1 balance update = 12 changes,
# the tables touched in turn.
ERP_TXN = f"""\\set acc random(1, {ERP_ACCOUNTS})
BEGIN;
INSERT INTO invoice VALUES (nextval('invoice_id_seq'), :acc, 'INV-' || currval('invoice_id_seq'),
  249.75, 'open', now());
INSERT INTO invoice_line SELECT nextval('invoice_line_id_seq'), currval('invoice_id_seq'),
  'item ' || g, g, 16.65, g * 16.65 FROM generate_series(1, 5) g;
INSERT INTO ledger SELECT nextval('ledger_id_seq'), currval('invoice_id_seq'), :acc,
  CASE WHEN g = 1 THEN 249.75 ELSE 0 END, CASE WHEN g > 1 THEN 62.4375 ELSE 0 END,
  'posting ' || g, now() FROM generate_series(1, 5) g;
UPDATE account SET balance = balance + 249.75, updated_at = now() WHERE id = :acc;
END;
"""
ERP_CHANGES = 12


def erp_db(cluster, name):
    cluster.createdb(name, ddl=ERP_DDL)
    d = Db(cluster, name)
    d.sql("INSERT INTO account SELECT g, 'account ' || g, 0, now() "
          "FROM generate_series(1, %s) g", (ERP_ACCOUNTS,))
    return d


def erp_marker(db, rid):
    db.sql("INSERT INTO account VALUES (%s, 'marker', 0, now())", (rid,))


def erp_wait(db, rid, timeout):
    wait_until(lambda: db.one("SELECT 1 FROM account WHERE id = %s", (rid,)), timeout, 0.005,
               f"account {rid} on {db.name}")
    return time.monotonic()


def erp_tdgl_pair(b, name):
    """An ERP primary (4 tables tracked) and a replica with the same schema, foreign keys
    included, streaming in long-poll (batch 500) after its initial sync."""
    p = erp_db(b.primary, name)
    ci = b.primary.conninfo(name)
    b.cli("tdgl-primary", ci, "migrate")
    for t in ERP_TABLES.split(","):
        b.cli("tdgl-primary", ci, "track", t)
    key, secret = b.keygen(name)
    prim = b.start_primary(name)
    b.replica.createdb(name, ddl=ERP_DDL)
    rci = b.replica.conninfo(name)
    b.cli("tdgl-replica", rci, "migrate")
    b.cli("tdgl-replica", rci, "source", "add", "main", "--url", prim.url, "--key", key,
          "--secret", secret, "--tables", ERP_TABLES, "--poll-interval", "3600",
          "--long-poll", *batch_flags())
    rep = b.start_replica(name)
    r = Db(b.replica, name)
    requests.post(rep.url + "/api/sources/main/pull",
                  headers={"Authorization": f"Bearer {b.admin_token}"}, timeout=600)
    wait_until(lambda: r.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources WHERE name = 'main'"),
               600, 0.05, "initial sync")
    wait_until(lambda: r.one("SELECT count(*) FROM account") == ERP_ACCOUNTS, 600, 0.05, "copy")
    return p, r, prim, rep


def erp_native_pair(b, name):
    p, r = erp_db(b.primary, name), erp_db(b.replica, name)
    b.native_subscribe(name, tables=ERP_TABLES.replace(",", ", "))
    return p, r


def fig10(b, sz):
    """Multi-table transactions (ERP-like, foreign keys on both sites): source TPS with the
    replica streaming vs native, lag after the load, and a backlog's catch-up rate vs native
    and vs figure 6's single-table backlog of as many changes, in the same run."""
    txns = max(sz["txns"] // 4 // 4 * 4, 400)
    backlog = max(sz["queued"] // ERP_CHANGES // 4 * 4, 400)
    n_changes = backlog * ERP_CHANGES
    log(f"figure 10: ERP transactions ({ERP_CHANGES} changes over 4 tables each): "
        f"{txns} with replication running, a backlog of {backlog} ({n_changes} changes)")
    erp_db(b.primary, "f10plain").sql("CHECKPOINT")
    base, _ = pgbench(b.primary, "f10plain", ERP_TXN, transactions=txns)

    p, r, prim, rep = erp_tdgl_pair(b, "f10tdgl")
    p.sql("CHECKPOINT")
    tps, _ = pgbench(b.primary, "f10tdgl", ERP_TXN, transactions=txns)
    t_end = time.monotonic()
    erp_marker(p, -1)
    lag = erp_wait(r, -1, 600) - t_end
    b.stop_proc(rep)
    for t in ("invoice", "invoice_line", "ledger"):
        assert r.one(f"SELECT count(*) FROM {t}") == p.one(f"SELECT count(*) FROM {t}"), t
    failed = r.one("SELECT count(*) FROM tdgl_replica.sync_log WHERE status = 'Failed'")
    # the backlog: the replica stopped while `backlog` transactions are written
    pgbench(b.primary, "f10tdgl", ERP_TXN, transactions=backlog)
    erp_marker(p, -2)
    t0 = time.monotonic()
    rep = b.start_replica("f10tdgl")
    rate = n_changes / (erp_wait(r, -2, 1800) - t0)
    failed += r.one("SELECT count(*) FROM tdgl_replica.sync_log WHERE status = 'Failed'")
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()

    np_, nr = erp_native_pair(b, "f10native")
    np_.sql("CHECKPOINT")
    ntps, _ = pgbench(b.primary, "f10native", ERP_TXN, transactions=txns)
    t_end = time.monotonic()
    erp_marker(np_, -1)
    nlag = erp_wait(nr, -1, 600) - t_end
    nr.sql("ALTER SUBSCRIPTION bench_sub DISABLE")
    wait_until(lambda: not nr.one("SELECT count(*) FROM pg_stat_subscription "
                                  "WHERE subname = 'bench_sub' AND pid IS NOT NULL"), 30, 0.05,
               "subscription worker to stop")
    pgbench(b.primary, "f10native", ERP_TXN, transactions=backlog)
    erp_marker(np_, -2)
    t_enable = time.monotonic()
    nr.sql("ALTER SUBSCRIPTION bench_sub ENABLE")
    # from its apply worker's start: the launcher starts it up to wal_retrieve_retry_interval
    # (5 s) after ENABLE, which would otherwise dominate a short backlog
    wait_until(lambda: nr.one("SELECT count(*) FROM pg_stat_subscription "
                              "WHERE subname = 'bench_sub' AND pid IS NOT NULL"), 60, 0.001,
               "subscription worker")
    t0 = time.monotonic()
    nrate = n_changes / (erp_wait(nr, -2, 1800) - t0)
    nstart = t0 - t_enable
    b.native_unsubscribe("f10native")
    np_.close(), nr.close()

    # figure 6's single-table backlog (UPDATEs, 1000 rows a transaction), as many changes
    p, r, prim, rep, _, _ = tdgl_pair(b, "f10single", rows=n_changes)
    b.stop_proc(rep)
    for lo in range(1, n_changes + 1, 1000):
        p.sql("UPDATE customer SET balance = balance + 1, updated_at = now() "
              "WHERE id BETWEEN %s AND %s", (lo, min(n_changes, lo + 999)))
    marker(p, -n_changes)
    t0 = time.monotonic()
    rep = b.start_replica("f10single")
    wait_row(r, -n_changes, 1800, 0.005)
    srate = n_changes / (time.monotonic() - t0)
    b.stop_proc(rep)
    b.stop_proc(prim)
    p.close(), r.close()

    record(10, "ERP source TPS ratio with replica running (tdgl)", tps / base, "x", ntps / base,
           "native", "", None,
           note=f"no replication {base:.0f} tps, tdgl {tps:.0f}, native {ntps:.0f}; "
                f"{txns} transactions of {ERP_CHANGES} changes; Failed entries {failed}")
    record(10, "ERP lag after the load ends", lag, "s", nlag, "native", "bounded", lag <= 1.0)
    record(10, f"ERP backlog of {n_changes:,} changes: catch-up", rate, "changes/s", nrate,
           "native", ">= native", rate >= nrate,
           note=f"tdgl from the replica's start; native from its apply worker's start "
                f"({nstart:.1f} s after ENABLE)")
    record(10, "ERP catch-up vs single-table catch-up (same run)", rate, "changes/s", srate,
           "single table", ">= 0.80x", rate >= 0.8 * srate,
           note="single table: UPDATEs of 1000 rows a transaction, as many changes")


def fig9(b, sz):
    """verify: 1M identical rows (scaled) against md5(string_agg(t::text ORDER BY id)) over
    the table on both sites, same run; then the bytes exchanged with 10 differing rows."""
    log(f"figure 9: verify {sz['big']:,} rows")
    p, r, prim, rep, key, secret = tdgl_pair(b, "f9", rows=sz["big"])
    rci = b.replica.conninfo("f9")
    for d in (p, r):
        d.sql("VACUUM ANALYZE customer")
    ref_q = "SELECT md5(string_agg(t::text, '' ORDER BY t.id)) FROM customer t"

    def verify():
        e = dict(os.environ, TDGL_DB=rci, TDGL_SECRET_KEY=b.secret_key)
        t0 = time.monotonic()
        out = subprocess.run([os.path.join(ROOT, "bin", "tdgl-replica"), "verify", "main",
                              "--json"], env=e, capture_output=True, text=True)
        el = time.monotonic() - t0
        if out.returncode not in (0, 3):
            raise RuntimeError(f"verify failed: {out.stderr or out.stdout}")
        return el, json.loads(out.stdout)["tables"][0]

    def reference():
        t0 = time.monotonic()
        p.one(ref_q)
        r.one(ref_q)
        return time.monotonic() - t0

    reference()                       # warm both caches the same way
    refs, runs = [], []
    for _ in range(3):
        refs.append(reference())
        el, t = verify()
        runs.append(el)
        if t["status"] != "identical":
            raise RuntimeError(f"identical tables verified {t['status']}")
    ref, val = min(refs), min(runs)
    record(9, f"verify {sz['big']:,} identical rows", val, "s", ref,
           "md5(string_agg) on both sites", "ratio <= 2", val / ref <= 2,
           note=f"runs {', '.join(f'{x:.2f}' for x in runs)}; reference runs "
                f"{', '.join(f'{x:.2f}' for x in refs)}; {t['requests']} requests, "
                f"{t['bytes']:,} bytes")
    size = p.one("SELECT pg_table_size('customer')")
    step = max(1, sz["big"] // 10)
    r.sql("BEGIN; SET LOCAL tdgl.applying = on; "
          f"UPDATE customer SET name = 'drift' WHERE id % {step} = 1; COMMIT")
    el, t = verify()
    n = t["counts"]["different"]
    record(9, f"bytes exchanged, {n} differing rows", t["bytes"], "B", size,
           "table size (pg_table_size)", "< 1 %", t["bytes"] < size / 100,
           note=f"{t['requests']} requests, {el:.2f} s; differences found "
                f"{t['counts']}")
    for d in (p, r):
        d.close()
    b.stop_proc(rep)
    b.stop_proc(prim)
def fig11(b, sz):
    """Console log pages (GET /api/log/page) as the replica's sync log grows: the newest page,
    a page in the middle (id cursor), a rare key, Failed entries, a one-minute time range;
    each against the same request on the smallest log that is larger than one page window
    (50,000 ids: a filter that matches little reads one window per request, whatever the
    log's size, and a smaller log is read whole)."""
    log(f"figure 11: sync log page time vs log size {sz['log_sizes']}")
    b.replica.createdb("f11")
    b.cli("tdgl-replica", b.replica.conninfo("f11"), "migrate")
    r = Db(b.replica, "f11")
    rep = b.start_replica("f11")
    h = {"Authorization": f"Bearer {b.admin_token}"}
    have, base = 0, {}

    def page_ms(params, reps=15):
        ts = []
        for _ in range(reps):
            t0 = time.monotonic()
            resp = requests.get(rep.url + "/api/log/page", headers=h, timeout=60, params=params)
            ts.append((time.monotonic() - t0) * 1000)
            assert resp.status_code == 200, resp.text
        return statistics.median(ts)

    for size in sz["log_sizes"]:
        # entries 10 ms apart, ending now; keys cycle over 100,000 rows; 1 in 1,000 Failed
        for lo in range(have, size, 500000):
            hi = min(size, lo + 500000)
            r.sql("INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, error, "
                  "created_at) SELECT 'main', g, 'customer', jsonb_build_object('id', g %% 100000), "
                  "'Update', CASE WHEN g %% 1000 = 0 THEN 'Failed' ELSE 'Synced' END, "
                  "CASE WHEN g %% 1000 = 0 THEN 'bench' END, "
                  "now() - (%s - g) * interval '10 ms' FROM generate_series(%s, %s) g",
                  (size, lo + 1, hi))
        have = size
        r.sql("VACUUM ANALYZE tdgl_replica.sync_log")
        mid = r.one("SELECT created_at FROM tdgl_replica.sync_log WHERE id = %s", (size // 2,))
        cases = [
            ("newest page", {"limit": 100}),
            ("page in the middle (before = size/2)", {"limit": 100, "before": size // 2}),
            ("a rare key (key=77)", {"limit": 100, "key": "77"}),
            ("status=Failed", {"limit": 100, "status": "Failed"}),
            ("one minute in the middle (since/until)",
             {"limit": 100, "since": mid.isoformat(),
              "until": (mid + datetime.timedelta(minutes=1)).isoformat()}),
        ]
        for what, params in cases:
            ms = page_ms(params)
            if size > 50000 or size == sz["log_sizes"][-1]:
                base.setdefault(what, (size, ms))
            if what not in base:
                log(f"  log {size:,} entries: {what}: {ms:.2f} ms (smaller than one window)")
                continue
            log(f"  log {size:,} entries: {what}: {ms:.2f} ms")
            record(11, f"log page, {what}, log {size:,} entries", ms, "ms", base[what][1],
                   f"log {base[what][0]:,} entries", "flat", ms <= base[what][1] * 2 + 2)
    b.stop_proc(rep)
    r.close()




def proc_cpu_s(pid):
    """utime + stime of a process, seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cluster_cpu_s(cluster):
    """CPU seconds of a cluster's postmaster and its live children (backends, workers)."""
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        pm = int(f.readline())
    total = proc_cpu_s(pm)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pm:
                        total += proc_cpu_s(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return total


def primary_metrics(url, key, secret, *names):
    """Values of the named metrics of one tdgl-primary process."""
    text = requests.get(url + "/metrics", headers={"Authorization": f"token {key}:{secret}"},
                        timeout=30).text
    vals = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
    return [vals[n] for n in names]


def fig12(b, sz):
    """Fan-out: N replicas (processes, one database each) long-polling one primary while a
    writer commits single-row transactions at a fixed rate; per-replica costs as N grows,
    and what N idle replicas cost the primary's database."""
    steps = [1, 10, sz["replicas"]] if sz["replicas"] > 10 else [1, sz["replicas"]]
    rate, seconds = 50, 6
    log(f"figure 12: fan-out to {steps} replicas, {rate} commits/s for {seconds} s")
    b.primary.createdb("f12")
    p = Db(b.primary, "f12")
    b.primary_setup("f12")
    prim = b.start_primary("f12", "--max-conns", "4096")
    mkey, msecret = b.keygen("f12", label="bench metrics")
    reps, dbs, base = [], [], None
    next_id = 1
    db0, t0 = cluster_cpu_s(b.primary), time.monotonic()
    time.sleep(3)
    idle0 = (cluster_cpu_s(b.primary) - db0) / (time.monotonic() - t0)   # no replica at all
    for n in steps:
        while len(reps) < n:
            name = f"f12r{len(reps)}"
            b.replica.createdb(name)
            rci = b.replica.conninfo(name)
            b.cli("tdgl-replica", rci, "migrate")
            # a key per replica, as docs/operations.md sets them up (the per-key caps)
            rkey, rsecret = b.keygen("f12", label=name)
            b.cli("tdgl-replica", rci, "source", "add", "main", "--url", prim.url, "--key", rkey,
                  "--secret", rsecret, "--tables", "customer", "--long-poll",
                  "--poll-interval", "3600")
            reps.append(b.start_replica(name))
            dbs.append(Db(b.replica, name))
        for r in dbs:
            wait_until(lambda: r.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources"), 300, 0.05,
                       "initial sync")
        time.sleep(2)   # every replica in its long-poll (a measurement window, not a test)
        db0, t0 = cluster_cpu_s(b.primary), time.monotonic()
        time.sleep(3)
        idle = (cluster_cpu_s(b.primary) - db0) / (time.monotonic() - t0)
        # One commit waking the n replicas, all at one cursor (the replicas restarted on a
        # snapshot cursor taken after their initial syncs: nothing was committed since).
        # Each woken long-poll asks for its page through the single flight, then each
        # replica's next long-poll asks once when it comes back: 2n asks, each a query
        # before; now an ask is a query, or answered by another's query
        # (tdgl_page_queries_shared_total), or a long-poll back at a current head that
        # waits unasked (tdgl_page_queries_skipped_total).
        for r in reps:
            b.stop_proc(r)
        snap = requests.get(prim.url + "/api/snapshot", timeout=30,
                            headers={"Authorization": f"token {mkey}:{msecret}"}).json()["cursor"]
        for d in dbs:
            d.sql("UPDATE tdgl_replica.sources SET cursor = %s", (snap,))
        reps[:] = [b.start_replica(f"f12r{i}") for i in range(len(reps))]
        waiting = lambda: primary_metrics(prim.url, mkey, msecret,
                                          "tdgl_longpoll_waiters")[0] == n  # noqa: E731
        wait_until(waiting, 120, 0.05, "every replica waiting")
        q0, s0, k0 = primary_metrics(prim.url, mkey, msecret, "tdgl_page_queries_total",
                                     "tdgl_page_queries_shared_total",
                                     "tdgl_page_queries_skipped_total")
        marker(p, next_id)
        for r in dbs:
            wait_until(lambda: r.one("SELECT count(*) FROM customer WHERE id = %s", (next_id,)),
                       120, 0.01, "the one change on every replica")
        next_id += 1
        wait_until(waiting, 120, 0.05, "every replica waiting again")
        q1, s1, k1 = primary_metrics(prim.url, mkey, msecret, "tdgl_page_queries_total",
                                     "tdgl_page_queries_shared_total",
                                     "tdgl_page_queries_skipped_total")
        wake_q, wake_asks = q1 - q0, (q1 - q0) + (s1 - s0) + (k1 - k0)
        log(f"  {n} replicas at one cursor, one commit: {wake_q:.0f} page queries for "
            f"{wake_asks:.0f} asks ({s1 - s0:.0f} shared, {k1 - k0:.0f} waited unasked; "
            f"before: one query per ask)")
        record(12, f"{n} idle replicas at one cursor, one commit: page queries", wake_q,
               "queries", wake_asks, "asks (one query each before)", "wake: 1 + next polls",
               wake_q <= n + 1, note=f"{s1 - s0:.0f} asks shared a query, {k1 - k0:.0f} "
               "long-polls back at the page's cursor waited without one")
        # runs failed so far: a replica stopped above ends its long-poll run as Failed
        # ("cancelled"); only the writer's window counts
        failed0 = sum(r.one("SELECT count(*) FROM tdgl_replica.runs WHERE status = 'Failed'")
                      for r in dbs)
        first = next_id
        pq0, ps0, pk0 = primary_metrics(prim.url, mkey, msecret, "tdgl_page_queries_total",
                                        "tdgl_page_queries_shared_total",
                                        "tdgl_page_queries_skipped_total")
        pc0, db0 = proc_cpu_s(prim.pid), cluster_cpu_s(b.primary)
        t_start = time.monotonic()
        for i in range(rate * seconds):
            marker(p, next_id)
            next_id += 1
            time.sleep(max(0.0, t_start + (i + 1) / rate - time.monotonic()))
        last = next_id - 1
        for r in dbs:
            wait_until(lambda: r.one("SELECT count(*) FROM customer WHERE id = %s", (last,)),
                       300, 0.01, "the last change on every replica")
        pcpu, dcpu = proc_cpu_s(prim.pid) - pc0, cluster_cpu_s(b.primary) - db0
        changes = last - first + 1
        pq1, ps1, pk1 = primary_metrics(prim.url, mkey, msecret, "tdgl_page_queries_total",
                                        "tdgl_page_queries_shared_total",
                                        "tdgl_page_queries_skipped_total")
        made = dict(p.sql("SELECT id, extract(epoch FROM changed_at) FROM tdgl.change_log "
                          "WHERE (row->>'id')::bigint BETWEEN %s AND %s", (first, last)))
        lat, failed = [], 0
        for r in dbs:
            for cid, at in r.sql("SELECT change_id, extract(epoch FROM created_at) FROM "
                                 "tdgl_replica.sync_entries WHERE change_id = ANY(%s)", (list(made),)):
                lat.append((float(at) - float(made[cid])) * 1000)
            failed += r.one("SELECT count(*) FROM tdgl_replica.runs WHERE status = 'Failed'")
        failed -= failed0
        per = {"proc_us": pcpu / changes / n * 1e6, "db_us": dcpu / changes / n * 1e6}
        if base is None:
            base = per
        log(f"  {n} replicas: commit -> visible p50 {pct(lat, 50):.1f} ms, p95 "
            f"{pct(lat, 95):.1f} ms, max {max(lat):.1f} ms; primary process "
            f"{per['proc_us']:.0f} us and database {per['db_us']:.0f} us per change per "
            f"replica; RSS {vm_rss_kb(prim.pid) / 1024:.1f} MB; idle database "
            f"{idle * 100:.1f} % of a core; failed runs {failed}; under the writer "
            f"{(pq1 - pq0) / changes:.2f} page queries per commit ({(ps1 - ps0) / changes:.2f} "
            f"asks per commit shared, {(pk1 - pk0) / changes:.2f} waited unasked)")
        # every change reached every replica: p's rows are the replicas' rows
        for r in dbs:
            assert r.one("SELECT count(*) FROM customer WHERE id BETWEEN %s AND %s",
                         (first, last)) == changes
        record(12, f"{n} replicas: commit -> visible p95", pct(lat, 95), "ms", pct(lat, 50),
               "p50", "", None, note=f"max {max(lat):.0f} ms, {len(lat)} samples")
        record(12, f"{n} replicas: primary process CPU per change per replica",
               per["proc_us"], "us", base["proc_us"], f"{steps[0]} replica", "flat",
               per["proc_us"] <= base["proc_us"] * 1.5)
        record(12, f"{n} replicas: primary database CPU per change per replica",
               per["db_us"], "us", base["db_us"], f"{steps[0]} replica", "flat",
               per["db_us"] <= base["db_us"] * 1.5)
        record(12, f"{n} replicas under the writer: page queries per commit",
               (pq1 - pq0) / changes, "queries",
               ((pq1 - pq0) + (ps1 - ps0) + (pk1 - pk0)) / changes, "asks per commit", "", None)
        record(12, f"{n} idle replicas: primary database CPU", idle * 100, "% core",
               idle0 * 100, "no replica", "indistinguishable from none", idle - idle0 <= 0.02,
               note=f"RSS {vm_rss_kb(prim.pid) / 1024:.1f} MB, failed runs {failed}")
    for r, d in zip(reps, dbs):
        b.stop_proc(r)
        d.close()
    b.stop_proc(prim)
    p.close()


def fig13(b, sz):
    """N fresh replicas doing their initial sync of the same table at once, against one
    replica's initial sync of it in the same run."""
    rows, n = sz["big"] // 10, sz["replicas"]
    log(f"figure 13: initial sync of {rows:,} rows, 1 replica, then {n} at once")
    b.primary.createdb("f13")
    p = Db(b.primary, "f13")
    insert_rows(p, 1, rows)
    b.primary_setup("f13")
    prim = b.start_primary("f13", "--max-conns", "4096")

    def sync(names):
        procs, dbs = [], []
        for name in names:
            b.replica.createdb(name)
            rci = b.replica.conninfo(name)
            b.cli("tdgl-replica", rci, "migrate")
            key, secret = b.keygen("f13", label=name)     # a key per replica
            b.cli("tdgl-replica", rci, "source", "add", "main", "--url", prim.url, "--key", key,
                  "--secret", secret, "--tables", "customer", "--poll-interval", "3600")
            dbs.append(Db(b.replica, name))
        t0 = time.monotonic()
        for name in names:                  # each starts its initial sync as it comes up
            procs.append(b.start_replica(name))
        for d in dbs:
            wait_until(lambda: d.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources"), 1800,
                       0.05, "initial sync")
        took = time.monotonic() - t0
        ok = all(d.one("SELECT count(*) FROM customer") == rows for d in dbs)
        for pr, d in zip(procs, dbs):
            b.stop_proc(pr)
            d.close()
        return took, ok

    one, ok1 = sync(["f13one"])
    many, okn = sync([f"f13r{i}" for i in range(n)])
    log(f"  1 replica: {one:.1f} s; {n} at once: {many:.1f} s ({many / one:.1f}x for {n}x "
        f"the rows; all complete: {ok1 and okn})")
    record(13, f"{n} replicas' initial sync at once (total)", many, "s", one, "1 replica",
           f"<= {n}x", many <= one * n and ok1 and okn,
           note=f"{rows:,} rows each; {n * rows / many:,.0f} rows/s in all")
    b.stop_proc(prim)
    p.close()


# Figure 14: two-way sync. Two sites, each a database with both roles (site A in the primary
# cluster, site B in the replica cluster), each pulling customer from the other with
# latest-wins; on both at once a steady load of branch transactions (a new row in the site's
# own key range and an update of a shared row, so concurrent edits of one row happen).
TWO_WAY_SQL = ("\\set id random(1, {rows})\n"
               "BEGIN;\n"
               "INSERT INTO customer SELECT " + ROW_EXPR.replace("%%", "%")
               + " FROM (SELECT nextval('customer_id_seq') AS g) s;\n"
               "UPDATE customer SET balance = balance + 1, updated_at = now() WHERE id = :id;\n"
               "END;\n")


def two_way_load(b, dbs, script, seconds):
    """pgbench on both sites at once; returns their tps."""
    out = {}

    def one(cluster, db):
        out[db] = pgbench(cluster, db, script, clients=2, seconds=seconds)[0]
    ts = [threading.Thread(target=one, args=cd) for cd in dbs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [out[db] for _, db in dbs]


def timed_initial_sync(b, db, d, cluster):
    """Starts the replica of database db (Db d) and times its initial sync: from the start
    (its first pull is the copy) until the copy stored its cursor. Returns (seconds, process)."""
    t0 = time.monotonic()
    rep = b.start_replica(db, cluster=cluster)
    wait_until(lambda: d.one("SELECT bool_and(cursor IS NOT NULL) FROM tdgl_replica.sources"),
               600, 0.01, f"{db}'s initial sync")
    return time.monotonic() - t0, rep


def fig14(b, sz):
    rows, seconds = sz["two_way_rows"], sz["two_way_s"]
    log(f"figure 14: two-way sync, {rows} shared rows, branch transactions on both sites "
        f"for {seconds} s")
    script = TWO_WAY_SQL.format(rows=rows)
    sites = ((b.primary, "f14a"), (b.replica, "f14b"))
    # no replication: the same tables and load, untracked
    for i, (c, db) in enumerate(sites):
        c.createdb(db + "plain")
        d = Db(c, db + "plain")
        insert_rows(d, 1, rows)
        d.sql("SELECT setval('customer_id_seq', %s)", ((i + 1) * 10 ** 9,))
        d.sql("CHECKPOINT")
        d.close()
    base = two_way_load(b, [(c, db + "plain") for c, db in sites], script, seconds)
    # two-way: both roles on each site's database, latest-wins both ways
    dbs, prims, keys = [], [], []
    for i, (c, db) in enumerate(sites):
        c.createdb(db)
        d = Db(c, db)
        if i == 0:             # B gets them by its initial sync (the same rows, to the byte)
            insert_rows(d, 1, rows)
        d.sql("SELECT setval('customer_id_seq', %s)", ((i + 1) * 10 ** 9,))
        ci = c.conninfo(db)
        b.cli("tdgl-primary", ci, "migrate")
        b.cli("tdgl-replica", ci, "migrate")
        b.cli("tdgl-primary", ci, "track", "customer")
        out = b.cli("tdgl-primary", ci, "keygen", "--label", "peer")
        f = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        keys.append((f["key"].strip(), f["secret"].strip()))
        prims.append(b.start_primary(db, cluster=c))
        dbs.append(d)
    reps = []
    for i, (c, db) in enumerate(sites):
        j = 1 - i
        ci = c.conninfo(db)
        b.cli("tdgl-replica", ci, "source", "add", "peer", "--url", prims[j].url, "--key",
              keys[j][0], "--secret", keys[j][1], "--tables", "customer", "--long-poll",
              "--poll-interval", "3600")
        dbs[i].sql("UPDATE tdgl_replica.sources SET conflict_policy = 'latest-wins'")
    joined = {}
    for i in (1, 0):           # B copies A's rows first (with their versions: JSON pages)
        joined[i], rep = timed_initial_sync(b, sites[i][1], dbs[i], sites[i][0])
        reps.append(rep)
    wait_until(lambda: dbs[1].one("SELECT count(*) FROM customer") == rows, 600, 0.05, "copy")
    # the reference: the same rows copied by a one-way replica (COPY pages), same run
    key, secret = b.keygen(sites[0][1], "one-way")
    b.replica_setup("f14oneway", prims[0].url, key, secret, "--poll-interval", "3600")
    one = Db(b.replica, "f14oneway")
    t_one, rep = timed_initial_sync(b, "f14oneway", one, b.replica)
    b.stop_proc(rep)
    one.close()
    for d in dbs:
        d.sql("CHECKPOINT")
    tps = two_way_load(b, sites, script, seconds)
    t_end = time.monotonic()

    def same():
        h = [d.one("SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM customer c")
             for d in dbs]
        return h[0] == h[1]
    wait_until(same, 600, 0.05, "both sites to converge")
    conv = time.monotonic() - t_end
    n = [d.one("SELECT count(*) FROM tdgl.change_log") for d in dbs]
    decided = sum(d.one("SELECT count(*) FROM tdgl_replica.conflicts WHERE decided_by IS NOT NULL")
                  for d in dbs)
    for p in reps + prims:
        b.stop_proc(p)
    for d in dbs:
        d.close()
    for i, name in enumerate("AB"):
        record(14, f"site {name} commit TPS with two-way sync (ratio to no replication)",
               tps[i] / base[i], "x", 1.0, "no replication", "", None,
               note=f"{tps[i]:.0f} tps vs {base[i]:.0f} tps untracked")
    record(14, "time to converge after the load (both tables md5-equal)", conv, "s", None, "",
           "", None, note=f"change logs {n[0]:,} / {n[1]:,} entries (own + forwarded); "
           f"{decided} conflicts decided by latest-wins")
    record(14, f"joining: B's initial sync of A's {rows:,} rows, with their versions",
           joined[1], "s", t_one, "one-way initial sync, same rows", "", None,
           note=f"{rows / joined[1]:,.0f} rows/s (from the replica's start); A's of B's table: "
                f"{joined[0]:.2f} s")


def sizes(scale):
    log_sizes = os.environ.get("BENCH_LOG_SIZES")
    return {
        "big": int(1000000 * scale),
        "txns": int(100000 * scale) // 4 * 4,
        "queued": int(200000 * scale),
        "samples": int(os.environ.get("BENCH_SAMPLES", "200")),
        "replicas": int(os.environ.get("BENCH_REPLICAS", "50")),
        "clients": int(os.environ.get("BENCH_CLIENTS", "500")),
        "pgbench_s": int(os.environ.get("BENCH_PGBENCH_S", "8")),
        "two_way_rows": int(50000 * scale),
        "two_way_s": int(os.environ.get("BENCH_TWO_WAY_S", "15")),
        "log_sizes": [int(x) for x in log_sizes.split(",")] if log_sizes
        else [10000, 100000, 1000000],
    }


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 30)
    pgv = subprocess.run([f"{PG_BIN}/postgres", "--version"], capture_output=True,
                         text=True).stdout.strip()
    return f"{os.cpu_count()} x {cpu}, {mem} GB RAM, {platform.system()} {platform.release()}, {pgv}"


def table_md(results):
    fmt = lambda v: "-" if v is None else (f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}")  # noqa
    lines = ["| # | figure | tdgl | reference (same run) | ratio | target | met | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ref = "-" if r["ref"] is None else f"{fmt(r['ref'])} {r['unit']} ({r['ref_label']})"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['fig']} | {r['what']} | {fmt(r['value'])} {r['unit']} | {ref} | "
                     f"{ratio} | {r['target']} | {met} | {r['note']} |")
    return "\n".join(lines)


def write_results(meta, total_s):
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = meta["date"].replace(":", "").replace("-", "")[:13]
    with open(os.path.join(ROOT, "bench", "results", f"{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "results": RESULTS}, f, indent=1)
    block = (f"<!-- bench:begin (written by bench/run.py; edit outside the markers) -->\n"
             f"Last run: {meta['date']} on {meta['machine']}; scale {meta['scale']} "
             f"(sizes {meta['sizes']}); figures {meta['figures']}; {total_s:.0f} s; "
             f"commit {meta['commit']}; 1-min load average after each figure "
             f"{meta['load']} (this machine is shared: other work runs during the "
             f"benchmark).\n\n{table_md(RESULTS)}\n<!-- bench:end -->")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
    if "<!-- bench:begin" in text and "<!-- bench:end -->" in text:
        a = text.index("<!-- bench:begin")
        z = text.index("<!-- bench:end -->") + len("<!-- bench:end -->")
        text = text[:a] + block + text[z:]
    else:
        text += "\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
    log(f"results written to BENCHMARKS.md and bench/results/{stamp}.json")


FIGURES = {1: fig1, 2: fig2, 3: fig3, 4: fig4, 5: fig5, 6: fig6, 8: fig8, 9: fig9, 10: fig10,
           11: fig11, 12: fig12, 13: fig13, 14: fig14}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--figures", default=os.environ.get("BENCH_FIGURES", "1,2,3,4,5,6,8,9,10,11,12,13,14"),
                    help="comma-separated figure numbers (7 is measured with 6)")
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "0.2")))
    ap.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/tmp/tdgl-bench"))
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch files")
    a = ap.parse_args()
    figs = [int(x) for x in a.figures.split(",") if x.strip()]
    sz = sizes(a.scale)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(), "scale": a.scale, "sizes": sz, "figures": figs,
            "commit": commit, "load": {}}
    log(f"tdgl bench: {meta['machine']}")
    log(f"scale {a.scale}: {sz}; work dir {a.workdir}")
    t0 = time.monotonic()
    b = Bench(a.workdir)
    try:
        for f in figs:
            if f in FIGURES:
                t1 = time.monotonic()
                try:
                    FIGURES[f](b, sz)
                except Exception as e:  # noqa: BLE001 - one broken figure does not stop the rest
                    log(f"figure {f} FAILED: {e!r}")
                    record(f, "figure failed", None, "", note=repr(e)[:200])
                load = open("/proc/loadavg").read().split()[0]
                meta["load"][f] = float(load)
                log(f"figure {f} took {time.monotonic() - t1:.0f} s (load average {load})")
    finally:
        b.close()
    total = time.monotonic() - t0
    print("\n" + table_md(RESULTS))
    if not a.no_write:
        write_results(meta, total)
    log(f"done in {total:.0f} s")


if __name__ == "__main__":
    main()

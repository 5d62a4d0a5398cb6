"""bench/sites.py: the two local sites of the benchmark.

One PostgreSQL cluster per site (the primary's with wal_level=logical so PostgreSQL's native
logical replication can run against it in the same run), tdgl-primary / tdgl-replica processes,
and the native publication/subscription pair. Everything lives under one work directory and
is torn down by Bench.close(). Runs as root (PostgreSQL then runs as the postgres user) or as a
user."""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

import psycopg2

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TDGL_BIN", os.path.join(ROOT, "bin"))

CUSTOMER_DDL = """
CREATE TABLE IF NOT EXISTS customer (
    id         bigint PRIMARY KEY,
    name       text,
    email      text,
    balance    numeric(12,2),
    tags       text[],
    data       jsonb,
    updated_at timestamptz
);
CREATE SEQUENCE IF NOT EXISTS customer_id_seq;
"""

# About 200 bytes per row (row_to_json of it is ~230 bytes).
ROW_EXPR = ("g, 'Customer number ' || g, 'customer' || g || '@example.com', "
            "(g %% 100000) * 1.25, ARRAY['bench','tag' || (g %% 10)], "
            "jsonb_build_object('n', g, 'city', 'Springfield', 'plan', 'gold', "
            "'note', 'benchmark row padding text'), now()")


def as_pg(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, interval=0.005, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def vm_hwm_kb(pid):
    """Peak resident set size of a process (VmHWM), in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Cluster:
    def __init__(self, workdir, name, extra_conf=""):
        self.dir = os.path.join(workdir, name)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(as_pg([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
                              "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = ''\nshared_buffers = 512MB\n"
                    "max_wal_size = 8GB\nmax_connections = 200\n"
                    "max_wal_senders = 10\nmax_replication_slots = 10\n"
                    + extra_conf)
        subprocess.run(as_pg([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l",
                              os.path.join(self.dir, "postgres.log"), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)

    def conninfo(self, db):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def connect(self, db="postgres", autocommit=True):
        c = psycopg2.connect(self.conninfo(db))
        c.autocommit = autocommit
        return c

    def createdb(self, db, ddl=CUSTOMER_DDL):
        c = self.connect()
        with c.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{db}"')
        c.close()
        if ddl:
            c = self.connect(db)
            with c.cursor() as cur:
                cur.execute(ddl)
            c.close()

    def stop(self):
        subprocess.run(as_pg([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                              "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Db:
    """A psycopg2 autocommit connection with one-liners."""

    def __init__(self, cluster, db):
        self.cluster = cluster
        self.name = db
        self.conninfo = cluster.conninfo(db)
        self.conn = cluster.connect(db)

    def sql(self, q, params=None):
        with self.conn.cursor() as cur:
            cur.execute(q, params)
            return cur.fetchall() if cur.description else None

    def one(self, q, params=None):
        r = self.sql(q, params)
        return r[0][0] if r else None

    def close(self):
        self.conn.close()


class Proc:
    def __init__(self, argv, env, logpath):
        self.log = open(logpath, "ab")
        e = dict(os.environ)
        e.update(env)
        self.p = subprocess.Popen(argv, env=e, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Bench:
    """Both sites: clusters, servers, keys. close() removes everything it started."""

    def __init__(self, workdir):
        self.workdir = workdir
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres")
        # private copies: other people rebuilding bin/ mid-run must not break or change it
        global BIN
        mine = os.path.join(workdir, "bin")
        os.makedirs(mine)
        for f in ("tdgl-primary", "tdgl-replica"):
            shutil.copy2(os.path.join(BIN, f), os.path.join(mine, f))
        BIN = mine
        self.procs = []
        self.clusters = []
        self.primary = Cluster(workdir, "primary-site", "wal_level = logical\n")
        self.clusters.append(self.primary)
        self.replica = Cluster(workdir, "replica-site")
        self.clusters.append(self.replica)
        self.secret_key = secrets.token_hex(32)
        self.admin_token = secrets.token_hex(16)

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        for c in self.clusters:
            c.stop()

    # tdgl ---------------------------------------------------------------------------------
    def cli(self, binary, db_conninfo, *args, env=None):
        e = dict(os.environ)
        e.update({"TDGL_DB": db_conninfo, "TDGL_SECRET_KEY": self.secret_key,
                  "TDGL_ADMIN_TOKEN": self.admin_token})
        e.update(env or {})
        r = subprocess.run([os.path.join(BIN, binary)] + list(args), env=e,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{binary} {' '.join(args)}: {r.stderr or r.stdout}")
        return r.stdout

    def primary_setup(self, db):
        """Migrates and tracks customer on a primary database; returns (key, secret)."""
        ci = self.primary.conninfo(db)
        self.cli("tdgl-primary", ci, "migrate")
        self.cli("tdgl-primary", ci, "track", "customer")
        return self.keygen(db)

    def keygen(self, db, label="bench"):
        out = self.cli("tdgl-primary", self.primary.conninfo(db), "keygen", "--label", label)
        f = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return f["key"].strip(), f["secret"].strip()

    def start_primary(self, db, *args, port=None, cluster=None):
        port = port or free_port()
        ci = (cluster or self.primary).conninfo(db)
        p = Proc([os.path.join(BIN, "tdgl-primary"), "serve", "--listen", f"127.0.0.1:{port}"]
                 + list(args), {"TDGL_DB": ci, "TDGL_LOG_FORMAT": "text"},
                 os.path.join(self.workdir, "tdgl-primary.log"))
        p.url = f"http://127.0.0.1:{port}"
        self.procs.append(p)
        self._wait_http(p, p.url + "/health")
        return p

    def start_replica(self, db, cluster=None):
        port = free_port()
        p = Proc([os.path.join(BIN, "tdgl-replica"), "serve", "--listen", f"127.0.0.1:{port}",
                  "--files-dir", os.path.join(self.workdir, "files")],
                 {"TDGL_DB": (cluster or self.replica).conninfo(db),
                  "TDGL_SECRET_KEY": self.secret_key,
                  "TDGL_ADMIN_TOKEN": self.admin_token},
                 os.path.join(self.workdir, f"tdgl-replica-{db}.log"))
        p.url = f"http://127.0.0.1:{port}"
        self.procs.append(p)
        self._wait_http(p, p.url + "/health")
        return p

    def stop_proc(self, p):
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    def _wait_http(self, p, url):
        import requests

        def up():
            if p.p.poll() is not None:
                raise RuntimeError(f"{url}: process exited ({p.p.returncode}); see logs in "
                                   f"{self.workdir}")
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(up, 20, 0.02, url)

    def replica_setup(self, db, primary_url, key, secret, *flags, tables="customer"):
        """Creates a replica database with the customer table and a source 'main'."""
        self.replica.createdb(db)
        ci = self.replica.conninfo(db)
        self.cli("tdgl-replica", ci, "migrate")
        self.cli("tdgl-replica", ci, "source", "add", "main", "--url", primary_url,
                 "--key", key, "--secret", secret, "--tables", tables, *flags)

    # native logical replication --------------------------------------------------------------
    def native_subscribe(self, db, name="bench_sub", tables="customer"):
        """Publication on the primary's db, subscription (no initial copy) on the replica's."""
        p = Db(self.primary, db)
        if not p.one("SELECT count(*) FROM pg_publication WHERE pubname = 'bench_pub'"):
            p.sql(f"CREATE PUBLICATION bench_pub FOR TABLE {tables}")
        p.close()
        r = Db(self.replica, db)
        r.sql(f"CREATE SUBSCRIPTION {name} CONNECTION %s PUBLICATION bench_pub "
              "WITH (copy_data = false)", (self.primary.conninfo(db),))
        wait_until(lambda: r.one("SELECT count(*) FROM pg_stat_subscription WHERE subname = %s "
                                 "AND pid IS NOT NULL", (name,)), 30, 0.05, "subscription worker")
        r.close()

    def native_unsubscribe(self, db, name="bench_sub"):
        r = Db(self.replica, db)
        r.sql(f"DROP SUBSCRIPTION IF EXISTS {name}")
        r.close()

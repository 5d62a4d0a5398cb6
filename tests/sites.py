"""Site helpers: a primary or replica site = a database + its CLI + its server.
Each test body stays short by going through these."""
import requests

from harness import Server, run, wait_until

ADMIN_TOKEN = "test-admin-token-0123456789"
SECRET_KEY = "test-secret-key-for-aes-gcm-0123456789"


class Site:
    binary = None

    def __init__(self, cluster, dbname, servers, logdir):
        self.cluster = cluster
        self.dbname = dbname
        self.conninfo = cluster.conninfo(dbname)
        self.servers = servers
        self.logdir = logdir
        self.conn = cluster.connect(dbname)
        self.server = None

    @property
    def env(self):
        return {"TDGL_DB": self.conninfo}

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass

    def sql(self, query, params=None):
        """Runs one statement in autocommit; returns all rows (or None)."""
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None

    def one(self, query, params=None):
        rows = self.sql(query, params)
        return rows[0][0] if rows else None

    def cli(self, *args, check=True, env=None):
        e = dict(self.env)
        e.update(env or {})
        return run(self.binary, *args, env=e, check=check)

    def migrate(self):
        return self.cli("migrate")

    def serve(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        self.server = Server(self.binary, list(args), e, self.logdir)
        self.servers.append(self.server)
        return self.server

    @property
    def url(self):
        return self.server.url


class PrimarySite(Site):
    binary = "tdgl-primary"

    def keygen(self, label="replica"):
        """Creates an API key; returns (key, secret)."""
        out = self.cli("keygen", "--label", label).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return fields["key"].strip(), fields["secret"].strip()

    def track(self, table, *flags):
        return self.cli("track", table, *flags)

    def get(self, path, key, secret, **params):
        return requests.get(self.url + path, params=params, timeout=30,
                            headers={"Authorization": f"token {key}:{secret}"})


class ReplicaSite(Site):
    binary = "tdgl-replica"

    @property
    def env(self):
        return {"TDGL_DB": self.conninfo, "TDGL_ADMIN_TOKEN": ADMIN_TOKEN,
                "TDGL_SECRET_KEY": SECRET_KEY}

    def api(self, method, path, **kw):
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def wait_idle(self, timeout=20):
        """Polls until no pull runs or is queued and no run is recorded Running."""
        def idle():
            st = self.api("GET", "/api/status").json()
            busy = [w for w in st["workers"] if w["running"] or w["pending"]]
            return not busy and self.one(
                "SELECT count(*) FROM tdgl_replica.runs WHERE status = 'Running'") == 0
        return wait_until(idle, timeout=timeout, what="the replica to be idle")

    def wait_rows(self, query, expected, timeout=10):
        """Polls until query returns `expected` rows."""
        return wait_until(lambda: self.sql(query) == expected, timeout=timeout,
                          what=f"{query!r} == {expected!r}")

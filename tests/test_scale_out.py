"""Several tdgl-primary processes on one database behind a real HAProxy (Debian's haproxy,
the layout of deploy/haproxy.cfg): replicas talk to the balancer, any process serves any
cursor, one process killed mid-stream loses and duplicates nothing, one process at a time
sends the push notifications and purges."""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from harness import free_port, wait_until
from test_replica import CUSTOMER, rows_md5
from test_replica_serve import PUSH, source_ready

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class Balancer:
    """HAProxy in front of the given primary servers (health-checked like the sample)."""

    def __init__(self, servers):
        self.dir = tempfile.mkdtemp(prefix="tdgl-haproxy-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        backends = "\n".join(f"    server p{i} 127.0.0.1:{s.port} check"
                             for i, s in enumerate(servers))
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 2s
    timeout client 90s
    timeout server 90s
    retries 2
    option redispatch
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /health
    default-server inter 300ms fall 1 rise 1
{backends}
""")
        self.proc = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(self._up, what="haproxy")

    def _up(self):
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def balanced(primary):
    """Two primary processes on one database behind HAProxy: (first, second, balancer)."""
    if not os.path.exists(HAPROXY):
        pytest.fail("haproxy is not installed (Debian package haproxy)")
    primary.sql(CUSTOMER)
    primary.track("customer")
    first = primary.serve()
    second = primary.serve()
    lb = Balancer([first, second])
    yield first, second, lb
    lb.close()


def test_a_primary_killed_mid_stream_loses_and_duplicates_nothing(primary, replica, balanced):
    first, second, lb = balanced
    key, secret = primary.keygen()
    replica.sql(CUSTOMER)
    replica.cli("source", "add", "main", "--url", lb.url, "--key", key, "--secret", secret,
                "--tables", "customer", "--long-poll", "--batch-size", "50")
    replica.serve()
    source_ready(replica)             # every change after this is logged once on the replica
    n, stop = 600, threading.Event()

    def writer():
        for i in range(1, n + 1):
            primary.sql("INSERT INTO customer VALUES (%s, 'n', 'X', %s)", (i, i))
            if i % 3 == 0:
                primary.sql("UPDATE customer SET amount = amount + 1 WHERE id = %s", (i - 1,))
            time.sleep(0.002)
        stop.set()

    t = threading.Thread(target=writer)
    t.start()
    wait_until(lambda: replica.one("SELECT count(*) FROM customer") > 100, timeout=30,
               what="the stream through the balancer")
    first.kill()                      # SIGKILL, requests in flight and all
    t.join(60)
    assert stop.is_set()
    wait_until(lambda: rows_md5(replica, "customer") == rows_md5(primary, "customer"),
               timeout=60, what="the replica to catch up through the other process")
    assert replica.sql("SELECT change_id FROM tdgl_replica.sync_entries WHERE change_id IS NOT NULL "
                       "GROUP BY change_id HAVING count(*) <> 1") == []
    assert replica.one("SELECT count(DISTINCT change_id) FROM tdgl_replica.sync_entries") == \
        primary.one("SELECT count(*) FROM tdgl.change_log")
    assert replica.one("SELECT count(*) FROM tdgl_replica.sync_entries WHERE status = 'Failed'") == 0


def test_one_process_sends_the_push_notifications_and_another_takes_over(primary, replica,
                                                                          balanced):
    first, second, lb = balanced
    key, secret = primary.keygen()
    replica.sql(CUSTOMER)
    replica.cli("source", "add", "main", "--url", lb.url, "--key", key, "--secret", secret,
                "--tables", "customer", "--poll-interval", "3600", "--push-secret", PUSH)
    replica.serve()
    primary.cli("push", "add", replica.url, env={"TDGL_PUSH_SECRET": PUSH})
    leads = "this process sends the push notifications"
    wait_until(lambda: (leads in first.log()) != (leads in second.log()), what="one leader")
    leader, other = (first, second) if leads in first.log() else (second, first)
    wait_until(lambda: "another process sends" in other.log() or leads not in other.log(),
               what="the other process to stand by")
    wait_until(lambda: "/api/notify active" in leader.log(), what="the leader's push target")
    assert "/api/notify active" not in other.log()
    leader.kill()
    wait_until(lambda: leads in other.log(), timeout=20, what="the other process to take over")
    wait_until(lambda: "/api/notify active" in other.log(), what="its push target")
    primary.sql("INSERT INTO customer VALUES (1, 'pushed after the handover', 'X', 1)")
    replica.wait_rows("SELECT name FROM customer", [("pushed after the handover",)],
                      timeout=20)


def test_one_purge_at_a_time(primary):
    """A purge that finds another one running skips (NULL) instead of competing with it."""
    holder = primary.cluster.connect(primary.dbname, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('tdgl.purge'))")
        assert primary.one("SELECT tdgl.purge('0 seconds')") is None
    finally:
        holder.rollback()
        holder.close()
    assert primary.one("SELECT tdgl.purge('0 seconds')") == 0


def test_each_process_names_itself_in_its_metrics(primary, balanced):
    first, second, lb = balanced
    key, secret = primary.keygen()
    auth = {"Authorization": f"token {key}:{secret}"}
    seen = set()
    for s in (first, second):
        text = requests.get(s.url + "/metrics", headers=auth, timeout=5).text
        line = [ln for ln in text.splitlines() if ln.startswith("tdgl_process_info{")][0]
        assert f":{s.port}\"" in line, line
        seen.add(line)
    assert len(seen) == 2

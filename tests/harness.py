"""Test harness: real PostgreSQL clusters and real tdgl processes, started and stopped here.

Clusters are initdb'ed into temporary directories and listen on a free 127.0.0.1 port; as
root they run as the `postgres` user. Waiting is always by polling (wait_until), never by a
fixed sleep.
"""
import http.server
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import psycopg2
import requests

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
TDGL_BIN = os.environ.get(
    "TDGL_BIN", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin"))
IS_ROOT = os.geteuid() == 0
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_define(path, name):
    """The integer value of `#define name N` in source file path (relative to the tree): the
    schema versions the binaries migrate to, written once, in C."""
    with open(os.path.join(SOURCE_ROOT, path)) as f:
        for line in f:
            words = line.split()
            if words[:2] == ["#define", name]:
                return int(words[2])
    raise LookupError(f"{name} is not defined in {path}")


REPLICA_SCHEMA = source_define("replica/cli.h", "REPLICA_SCHEMA_VERSION")
PRIMARY_SCHEMA = source_define("primary/main.c", "SCHEMA_VERSION")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(AssertionError):
    """Raised by a polled predicate when waiting longer cannot help (the process died)."""


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; returns it or raises AssertionError.
    Transient errors are polled through; a Fatal one ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


class StubRequest:
    """One request to a StubHTTP: method, raw (path with query), path, query (parse_qs),
    headers (dict), body (bytes), client (the peer's (host, port): its connection)."""

    def __init__(self, method, raw, headers, body, client=None):
        u = urllib.parse.urlsplit(raw)
        self.method, self.raw, self.path, self.client = method, raw, u.path, client
        self.query = urllib.parse.parse_qs(u.query)
        self.headers, self.body = headers, body


class StubHTTP:
    """A local HTTP/1.1 server standing in for a peer: handle(StubRequest) returns
    (status, body bytes), sent as JSON. `url` is its address; close() stops it."""

    def __init__(self, handle, port=0):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, out = handle(StubRequest(self.command, self.path, dict(self.headers),
                                                 body, self.client_address))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--"] + cmd if IS_ROOT else cmd


class Cluster:
    """A PostgreSQL 15 cluster in a temporary directory. env: what its server runs with
    besides ours (e.g. libfaketime, for a site whose clock is off)."""

    def __init__(self, name, env=None):
        self.name = name
        self.env = dict(os.environ, **(env or {}))
        self.base = tempfile.mkdtemp(prefix=f"tdgl-{name}-")
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "postgres.log")
        self.port = free_port()
        self._dbs = 0
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", self.datadir, "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = ''\nfsync = off\nfull_page_writes = off\n"
                    "max_connections = 300\nshared_buffers = 64MB\n"
                    "log_min_messages = warning\n")
        self.start()

    def start(self):
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile,
                                     "-w", "-t", "60", "start"]),
                       check=True, stdout=subprocess.DEVNULL, env=self.env)

    def stop(self, mode="fast"):
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-m", mode,
                                     "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self):
        """SIGKILLs the postmaster (a crash); start() recovers."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            pid = int(f.readline())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pid_alive(pid), what="postmaster to die")
        # children notice the postmaster's death and exit; wait for the port to free
        wait_until(lambda: not _port_open(self.port), timeout=30, what="port to close")

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def conninfo(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def connect(self, db="postgres", autocommit=True):
        conn = psycopg2.connect(self.conninfo(db))
        conn.autocommit = autocommit
        return conn

    def new_db(self, prefix="t"):
        self._dbs += 1
        name = f"{prefix}{self._dbs}"
        # not `with conn:` - psycopg2 opens a transaction there, which CREATE DATABASE refuses
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(text):
    """The first sanitizer report in a process's output, or None."""
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            return text[max(0, i - 200):i + 3000]
    return None


def run(binary, *args, env=None, check=True, input=None, timeout=60):
    """Runs a tdgl command to completion; returns CompletedProcess (text).
    A sanitizer report in its output always fails the test."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([os.path.join(TDGL_BIN, binary)] + [str(a) for a in args], env=e,
                       capture_output=True, text=True, input=input, timeout=timeout)
    report = sanitizer_report(p.stderr)
    if report:
        raise AssertionError(f"sanitizer report from {binary} {args!r}:\n{report}")
    if check and p.returncode != 0:
        raise AssertionError(f"{binary} {' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


class Server:
    """A running `tdgl-primary serve` or `tdgl-replica serve`; logs go to a file."""

    def __init__(self, binary, args, env, logdir):
        self.binary = binary
        self.args = [str(a) for a in args]
        self.env = dict(os.environ)
        self.env.update(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = os.path.join(logdir, f"{binary}-{self.port}.log")
        self.proc = None
        self.start()

    def start(self):
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(TDGL_BIN, self.binary), "serve", "--listen",
             f"127.0.0.1:{self.port}"] + self.args,
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._healthy, timeout=20, what=f"{self.binary} /health")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise Fatal(f"{self.binary} exited {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.binary} ignored {sig!r} for {timeout}s")
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def sanitizer_report(self):
        return sanitizer_report(self.log())

    def restart(self):
        self.stop()
        self.start()

"""Deployment: docker-compose.yml, the Dockerfile, the entrypoint and .env.example agree with
the binaries (there is no Docker engine here, so the compose file is checked against what the
binaries and the entrypoint actually read and run); `make demo` runs to completion; `make
install` honours PREFIX and DESTDIR."""
import os
import re
import shutil
import socket
import subprocess
import tempfile

import psycopg2
import pytest
import requests
import yaml

from harness import IS_ROOT, TDGL_BIN, free_port, wait_until



ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = {"primary": "tdgl-primary", "replica": "tdgl-replica"}


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(read("docker-compose.yml"))


@pytest.fixture(scope="module")
def entrypoint():
    return read("deploy/entrypoint.sh")


def tdgl(binary, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TDGL_")}
    return subprocess.run([os.path.join(TDGL_BIN, binary)] + list(args), env=e,
                          capture_output=True, text=True, timeout=30)


def help_texts(binary):
    """--help of the binary and of every command it lists (and of `<group> <sub>`)."""
    main = tdgl(binary, "--help").stdout
    texts = [main]
    for line in main.splitlines():
        if not re.match(r"^  [a-z]", line):
            continue
        synopsis = re.split(r"\s{2,}", line.strip())[0]
        for part in synopsis.split(" | "):
            words = part.split()
            cmd = words[:2] if len(words) > 1 and re.match(r"^[a-z][a-z-]*$", words[1]) \
                else words[:1]
            texts.append(tdgl(binary, *cmd, "--help").stdout)
    return texts


def env_read_by(binary):
    return {m for t in help_texts(binary) for m in re.findall(r"\[env (TDGL_[A-Z_]+)\]", t)}


def entrypoint_roles(entrypoint):
    return set(re.findall(r"^(\w+)\)", entrypoint, re.M))


def entrypoint_section(entrypoint, role):
    """The lines of the entrypoint that run for one role (plus the shared prologue)."""
    prologue = entrypoint.split("case ")[0]
    m = re.search(r"^" + role + r"\)\n(.*?);;", entrypoint, re.M | re.S)
    return prologue + (m.group(1) if m else "")


def entrypoint_env(text, required_only=False):
    """TDGL_* variables the script reads; required_only: those without a default
    (${VAR:-default}, or ${VAR-default}: unset takes the default, empty stays empty)."""
    names = set(re.findall(r"\$\{?(TDGL_[A-Z_]+)", text))
    if required_only:
        names -= set(re.findall(r"\$\{(TDGL_[A-Z_]+):?-", text))
    return names


def tdgl_services(compose):
    out = {}
    for name, svc in compose["services"].items():
        cmd = svc.get("command") or []
        cmd = cmd.split() if isinstance(cmd, str) else cmd
        if cmd and cmd[0] in ROLES:
            out[name] = (cmd[0], svc)
    return out


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


@pytest.mark.parametrize("env_file", [True, False], ids=["with .env", "without .env"])
def test_compose_v1_validates_the_file(env_file):
    """Debian 12's Compose (docker-compose 1.29) reads the file: `config` validates without an
    engine. Without .env it refuses, naming the setting to make."""
    d = tempfile.mkdtemp(prefix="tdgl-compose-")
    try:
        shutil.copy(os.path.join(ROOT, "docker-compose.yml"), d)
        if env_file:
            shutil.copy(os.path.join(ROOT, ".env.example"), os.path.join(d, ".env"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TDGL_", "POSTGRES_", "COMPOSE_"))}
        p = subprocess.run(["docker-compose", "config", "-q"], cwd=d, env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if env_file:
        assert p.returncode == 0, p.stdout + p.stderr
    else:
        assert p.returncode != 0 and "set POSTGRES_PASSWORD in .env" in p.stderr, p.stderr


def test_scale_out_variant_validates_and_its_balancer_config_is_valid():
    """deploy/docker-compose.scale.yml (a second primary process behind HAProxy) is read by
    Compose over the main file, and HAProxy accepts deploy/haproxy.cfg."""
    d = tempfile.mkdtemp(prefix="tdgl-compose-")
    try:
        os.makedirs(os.path.join(d, "deploy"))
        shutil.copy(os.path.join(ROOT, "docker-compose.yml"), d)
        shutil.copy(os.path.join(ROOT, "deploy", "docker-compose.scale.yml"),
                    os.path.join(d, "deploy"))
        shutil.copy(os.path.join(ROOT, ".env.example"), os.path.join(d, ".env"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TDGL_", "POSTGRES_", "COMPOSE_"))}
        p = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "-f",
                            "deploy/docker-compose.scale.yml", "config"], cwd=d, env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    merged = yaml.safe_load(p.stdout)
    assert merged["services"]["replica"]["environment"]["TDGL_PRIMARY_URL"] == \
        "http://balancer:8080"
    assert {"primary", "primary2", "balancer"} <= set(merged["services"])
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    c = subprocess.run([haproxy, "-c", "-f", os.path.join(ROOT, "deploy", "haproxy.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert c.returncode == 0, c.stdout + c.stderr


def test_compose_runs_both_servers_from_the_entrypoint_roles(compose, entrypoint):
    services = tdgl_services(compose)
    assert {role for role, _ in services.values()} == set(ROLES)
    assert set(ROLES) <= entrypoint_roles(entrypoint)
    assert {"primary-db", "replica-db"} <= set(compose["services"])
    for name in ("primary-db", "replica-db"):
        assert compose["services"][name]["image"].startswith("postgres:15")


def test_compose_environment_is_read_by_the_binaries(compose, entrypoint):
    for name, (role, svc) in tdgl_services(compose).items():
        known = env_read_by(ROLES[role]) | entrypoint_env(entrypoint_section(entrypoint, role))
        for var in env_of(svc):
            if var.startswith("TDGL_"):
                assert var in known, f"{name}: {var} is read by neither {ROLES[role]} " \
                                     f"(--help [env ...]) nor the entrypoint"


def test_entrypoint_reads_only_variables_compose_sets(compose, entrypoint):
    for name, (role, svc) in tdgl_services(compose).items():
        needed = entrypoint_env(entrypoint_section(entrypoint, role), required_only=True)
        missing = needed - set(env_of(svc))
        assert not missing, f"{name}: the entrypoint reads {missing}, compose does not set them"


def test_every_command_the_entrypoint_runs_exists(entrypoint):
    runs = re.findall(r"\b(tdgl-primary|tdgl-replica)((?: [a-z][a-z-]*)+)", entrypoint)
    assert len(runs) >= 6, runs
    for binary, words in runs:
        p = tdgl(binary, *words.split(), "--help")
        assert p.returncode == 0, f"`{binary}{words} --help` exited {p.returncode}: {p.stderr}"
        assert p.stdout.startswith("usage: ")


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


def test_ports_agree(compose, entrypoint):
    listen = {}
    for name, (role, svc) in tdgl_services(compose).items():
        env = env_of(svc)
        port = port_of(env.get("TDGL_LISTEN", "0.0.0.0:8080" if role == "primary"
                                                else "0.0.0.0:8081"))
        listen[name] = port
        mapped = [int(str(p).split(":")[-1]) for p in svc.get("ports", [])]
        assert mapped == [port], f"{name}: ports {svc.get('ports')} vs TDGL_LISTEN {port}"
        test = " ".join(svc["healthcheck"]["test"])
        hc = re.findall(r"https?://[^/:\s]+:(\d+)/health", test)
        assert hc and all(int(p) == port for p in hc), f"{name}: healthcheck {test}"
    urls = re.findall(r"https?://([a-z][a-z0-9-]*):(\d+)", entrypoint)
    assert urls, "the entrypoint wires no URL"
    for host, port in urls:
        assert host in listen, f"entrypoint URL host {host} is not a compose service"
        assert int(port) == listen[host], f"entrypoint uses {host}:{port}, " \
                                          f"{host} listens on {listen[host]}"


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    for name, svc in tdgl_services(compose).items():
        deps = svc[1].get("depends_on")
        assert isinstance(deps, dict) and deps, f"{name}: depends_on must name conditions"
        for dep, cond in deps.items():
            assert cond.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    # the replica needs the primary's credentials and API
    assert "primary" in services["replica"]["depends_on"]


def test_volumes_are_named_and_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            assert not src.startswith((".", "/")), f"{name}: bind mount {v}"
            assert src in declared, f"{name}: volume {src} not declared"


def dockerfile_stages():
    stages, cur = [], None
    for line in read("Dockerfile").splitlines():
        s = line.strip()
        if s.upper().startswith("FROM "):
            cur = [s]
            stages.append(cur)
        elif cur is not None:
            cur.append(s)
    return stages


def test_dockerfile_is_multi_stage_debian_with_a_non_root_runtime_user():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for st in stages:
        assert re.match(r"FROM debian:", st[0]), st[0]
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    text = "\n".join(final)
    assert re.search(r"useradd\b.*\b" + re.escape(users[-1].split(":")[0]) + r"\b", text)
    assert not any(re.search(r"-dev\b", line) for line in final), "-dev packages at runtime"


def test_runtime_image_has_what_the_entrypoint_and_healthchecks_run(compose, entrypoint):
    final = "\n".join(dockerfile_stages()[-1])
    assert "postgresql-client" in final            # pg_isready, psql
    assert re.search(r"\bcurl\b", final)          # healthcheck
    for tool in ("pg_isready", "psql"):
        assert tool in entrypoint
    m = re.search(r'ENTRYPOINT \["([^"]+)"\]', final)
    assert m, "no exec-form ENTRYPOINT"
    assert re.search(r"COPY deploy/entrypoint\.sh " + re.escape(m.group(1)), final)
    for path in re.findall(r"^SAMPLE=\$\{[A-Z_]+:-([^}]+)\}|^SAMPLE=(\S+)", entrypoint, re.M):
        p = [x for x in path if x][0]
        assert re.search(r"COPY deploy/sample\.sql " + re.escape(p), final), p


@pytest.mark.packaging
def test_dockerfile_build_stage_builds_from_what_it_copies(tmp_path):
    """Runs the build stage's RUN line in a directory holding only what its COPY lines copy:
    a source file outside them breaks `docker build` even when `make` works here."""
    build = dockerfile_stages()[0]
    for line in build:
        m = re.match(r"COPY (\S+) (\S+)$", line)
        if m:
            src, dst = os.path.join(ROOT, m.group(1)), tmp_path / m.group(2).rstrip("/")
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.o", "*.d"))
            else:
                shutil.copy(src, tmp_path / (m.group(2) if m.group(2) != "./"
                                             else os.path.basename(src)))
    run = [line[4:] for line in build if line.startswith("RUN make")]
    assert run, "no RUN make in the build stage"
    cmd = run[0].replace("make -j2", f"make -j{os.cpu_count() or 2}")
    cmd = cmd.replace("make install", f"make install DESTDIR={tmp_path}/root")
    env = dict(os.environ, CFLAGS="-O0")      # the file set is under test, not the optimizer
    p = subprocess.run(["sh", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    for binary in ROLES.values():
        assert os.access(tmp_path / "root/opt/tdgl/bin" / binary, os.X_OK)


def test_runtime_image_installs_every_library_the_binaries_link():
    final = "\n".join(dockerfile_stages()[-1])
    build = "\n".join(dockerfile_stages()[0])
    needed = {}                                       # library -> resolved path
    for binary in ROLES.values():
        path = os.path.join(TDGL_BIN, binary)
        dump = subprocess.run(["objdump", "-p", path], capture_output=True, text=True,
                              check=True).stdout
        resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
            ["ldd", path], capture_output=True, text=True, check=True).stdout, re.M))
        for lib in re.findall(r"NEEDED\s+(\S+)", dump):
            if not lib.startswith(("libasan", "libubsan")):      # a SANITIZE build
                needed[lib] = resolved[lib]
    candidates = [p for w in needed.values()
                  for p in [w] + (["/usr" + w] if w.startswith("/lib") else [])]
    # one dpkg call: it reads every package's file list each time
    owners = {}
    for line in subprocess.run(["dpkg", "-S"] + candidates, capture_output=True,
                               text=True).stdout.splitlines():
        pkg, path = line.split(": ", 1)
        owners[path.replace("/usr/lib/", "/lib/")] = pkg.split(":")[0]
    for lib, where in needed.items():
        owner = owners.get(where.replace("/usr/lib/", "/lib/"))
        assert owner, f"no package holds {lib} ({where})"
        if owner in ("libc6", "libgcc-s1"):
            continue        # in every Debian image
        assert re.search(rf"\b{re.escape(owner)}\b", final), \
            f"the binaries link {lib} ({owner}), not installed in the runtime stage"
    for dev in re.findall(r"\S+-dev\b", read("tools/deps.sh")):
        assert dev in build, f"build stage lacks {dev} (tools/deps.sh has it)"


def test_env_example_defines_every_variable_and_no_real_secret():
    text = read("docker-compose.yml")
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    example = {}
    for line in read(".env.example").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            example[k.strip()] = v.strip()
    assert used, "compose reads nothing from .env"
    assert used <= set(example), f"missing from .env.example: {used - set(example)}"
    settings = {"COMPOSE_PROJECT_NAME"}            # not secrets: Compose's own settings
    for k, v in example.items():
        assert k in settings or "change-me" in v or v == "", \
            f".env.example {k}={v!r} looks like a real value"
    # values the binaries check must still pass with the placeholders (so `cp .env.example
    # .env` fails loudly only where the compose file says so, never at a length check)
    assert len(example["TDGL_ADMIN_TOKEN"]) >= 16 and len(example["TDGL_PUSH_SECRET"]) >= 16


def test_env_file_is_not_committed():
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    assert tracked == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env is not in .gitignore"


def test_systemd_units_run_installed_binaries():
    for role, binary in ROLES.items():
        unit = read(f"deploy/{binary}.service")
        assert re.search(rf"^ExecStart=/usr/local/bin/{binary} serve$", unit, re.M)
        assert re.search(rf"^ExecStartPre=/usr/local/bin/{binary} migrate$", unit, re.M)
        assert re.search(r"^User=(?!root)\w+", unit, re.M)


# ---- the entrypoint, run for real against local clusters -------------------------------

def start_role(role, env, logdir):
    log = open(os.path.join(logdir, f"entrypoint-{role}.log"), "ab")
    e = {k: v for k, v in os.environ.items() if not k.startswith("TDGL_")}
    e.update(env)
    e["PATH"] = TDGL_BIN + os.pathsep + e.get("PATH", "/usr/bin:/bin")
    p = subprocess.Popen(["sh", os.path.join(ROOT, "deploy/entrypoint.sh"), role], env=e,
                         stdout=log, stderr=subprocess.STDOUT, cwd=logdir)
    log.close()
    return p


def healthy(proc, url, logfile):
    if proc.poll() is not None:
        with open(logfile) as f:
            raise AssertionError(f"entrypoint exited {proc.returncode}:\n{f.read()[-3000:]}")
    try:
        return requests.get(url + "/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_entrypoint_sets_up_a_working_pair_and_restarts_cleanly(primary, replica, logdir):
    shared = tempfile.mkdtemp(prefix="tdgl-shared-")
    files = tempfile.mkdtemp(prefix="tdgl-files-")
    pport, rport = free_port(), free_port()
    purl, rurl = f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{rport}"
    common = {"TDGL_SHARED_DIR": shared, "TDGL_SAMPLE_SQL": os.path.join(ROOT, "deploy/sample.sql"),
              "TDGL_PRIMARY_URL": purl, "TDGL_REPLICA_URL": rurl, "TDGL_FILES_DIR": files,
              "TDGL_PUSH_SECRET": "push-secret-for-the-test-0123"}
    penv = dict(common, TDGL_DB=primary.conninfo, TDGL_LISTEN=f"127.0.0.1:{pport}")
    renv = dict(common, TDGL_DB=replica.conninfo, TDGL_LISTEN=f"127.0.0.1:{rport}",
                TDGL_ADMIN_TOKEN="admin-token-for-the-test-0123",
                TDGL_SECRET_KEY="secret-key-for-the-test-0123456789")
    procs = []
    try:
        for round_ in range(2):        # the second round is a container restart
            procs = [start_role("primary", penv, logdir)]
            wait_until(lambda: healthy(procs[0], purl, os.path.join(logdir, "entrypoint-primary.log")),
                       timeout=60, what="primary via the entrypoint")
            procs.append(start_role("replica", renv, logdir))
            wait_until(lambda: healthy(procs[1], rurl, os.path.join(logdir, "entrypoint-replica.log")),
                       timeout=60, what="replica via the entrypoint")
            n = 10 * (round_ + 1)
            primary.sql("INSERT INTO customer (id, name) SELECT g, 'c' || g FROM "
                        "generate_series(%s, %s) g", (n - 9, n))
            wait_until(lambda: replica.one("SELECT count(*) FROM customer") == n, timeout=60,
                       what=f"{n} customers on the replica")
            for p in reversed(procs):
                p.terminate()
                assert p.wait(30) == 0
        assert os.stat(os.path.join(shared, "replica.credentials")).st_mode & 0o077 == 0
        assert primary.one("SELECT count(*) FROM tdgl.api_keys") == 1
        assert primary.one("SELECT count(*) FROM tdgl.push_targets") == 1
        assert replica.one("SELECT count(*) FROM tdgl_replica.sources") == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(files, ignore_errors=True)


# ---- make demo / make install ----------------------------------------------------------

def demo_env(demo_dir):
    ports = {"DEMO_PRIMARY_PG_PORT": free_port(), "DEMO_REPLICA_PG_PORT": free_port(),
             "DEMO_PRIMARY_PORT": free_port(), "DEMO_REPLICA_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDGL_")}
    env.update({k: str(v) for k, v in ports.items()})
    env["DEMO_DIR"] = os.path.join(demo_dir, "demo")
    env["TDGL_BIN"] = TDGL_BIN
    return env


@pytest.mark.skipif(not IS_ROOT, reason="as a user already: test_make_demo_runs_to_completion")
@pytest.mark.packaging
def test_demo_runs_as_an_ordinary_user():
    demo_dir = tempfile.mkdtemp(prefix="tdgl-demo-user-")
    shutil.chown(demo_dir, "postgres")
    env = demo_env(demo_dir)
    as_user = ["runuser", "-u", "postgres", "--", "env"] + [f"{k}={v}" for k, v in env.items()
                                                          if k.startswith(("DEMO_", "TDGL_"))]
    try:
        p = subprocess.run(as_user + ["bash", "tools/demo.sh", "start"], cwd=ROOT,
                           capture_output=True, text=True, timeout=240)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-4000:]
        assert "replica now has: edited on the primary" in out, out[-2000:]
        assert f"DEMO_DIR={env['DEMO_DIR']} make demo-stop" in out
    finally:
        s = subprocess.run(as_user + ["bash", "tools/demo.sh", "stop"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        shutil.rmtree(demo_dir, ignore_errors=True)
    assert s.returncode == 0, s.stdout + s.stderr


@pytest.mark.packaging
def test_make_demo_runs_to_completion():
    demo_dir = tempfile.mkdtemp(prefix="tdgl-demo-")
    if IS_ROOT:
        shutil.chown(demo_dir, "postgres")
    env = demo_env(demo_dir)
    ports = {k: env[k] for k in ("DEMO_PRIMARY_PORT", "DEMO_REPLICA_PORT")}
    try:
        p = subprocess.run(["make", "-s", "demo"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=240)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-4000:]
        assert f"http://127.0.0.1:{ports['DEMO_PRIMARY_PORT']}" in out, out[-2000:]
        assert f"http://127.0.0.1:{ports['DEMO_REPLICA_PORT']}" in out
        assert "admin token" in out and "make demo-stop" in out
        assert "Accept Primary" in out
        assert "replica now has: edited on the primary" in out, out[-2000:]
        # push is wired once the replica listens: no failed notify to start the log with
        with open(os.path.join(env["DEMO_DIR"], "primary.log")) as f:
            assert "Couldn't connect" not in f.read()
        # the demo's clusters take a password, kept in a file only its owner reads
        for port in (env["DEMO_PRIMARY_PG_PORT"], env["DEMO_REPLICA_PG_PORT"]):
            with pytest.raises(psycopg2.OperationalError, match="password"):
                psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                 dbname="postgres", passfile="/dev/null")
        assert os.stat(os.path.join(env["DEMO_DIR"], "pgpass")).st_mode & 0o077 == 0
    finally:
        s = subprocess.run(["make", "-s", "demo-stop"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        shutil.rmtree(demo_dir, ignore_errors=True)
    assert s.returncode == 0, s.stdout + s.stderr
    assert not os.path.exists(env["DEMO_DIR"])


# a secret option followed by a value: a shell variable or a literal secret (hex)
SECRET_ON_ARGV = re.compile(
    r"--(secret|push-secret|admin-token|secret-key)(=|\s+)(\"?\$|'?[0-9a-f]{4})")


def test_no_command_the_docs_or_scripts_show_puts_a_secret_on_its_command_line():
    """Every local user reads a running command's arguments (ps, /proc/*/cmdline): the
    demo, the entrypoint and the docs pass secrets through files, stdin or the environment."""
    offenders = []
    for path in ("tools/demo.sh", "deploy/entrypoint.sh", "README.md", "docs/operations.md",
                 "docs/api.md", "docs/design.md"):
        for n, line in enumerate(read(path).splitlines(), 1):
            if SECRET_ON_ARGV.search(line):
                offenders.append(f"{path}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.packaging
def test_demo_on_a_busy_port_names_it_and_starts_nothing():
    demo_dir = tempfile.mkdtemp(prefix="tdgl-demo-busy-")
    env = demo_env(demo_dir)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env["DEMO_REPLICA_PORT"] = str(busy.getsockname()[1])
        try:
            p = subprocess.run(["bash", "tools/demo.sh", "start"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(demo_dir, ignore_errors=True)
    assert p.returncode != 0
    assert f"port {env['DEMO_REPLICA_PORT']} is in use" in p.stderr, p.stderr
    assert "DEMO_REPLICA_PORT" in p.stderr
    for port in (env["DEMO_PRIMARY_PG_PORT"], env["DEMO_PRIMARY_PORT"]):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(port))) != 0, f"{port} was started"


@pytest.mark.packaging
def test_make_install_honours_prefix_and_destdir():
    dest = tempfile.mkdtemp(prefix="tdgl-install-")
    try:
        p = subprocess.run(["make", "-s", "install", "PREFIX=/opt/tdgl", f"DESTDIR={dest}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        base = os.path.join(dest, "opt/tdgl")
        for binary in ROLES.values():
            path = os.path.join(base, "bin", binary)
            assert os.access(path, os.X_OK), path
            v = subprocess.run([path, "--version"], capture_output=True, text=True)
            assert v.returncode == 0 and v.stdout.startswith(binary)
            assert os.path.isfile(os.path.join(base, "lib/systemd/system", f"{binary}.service"))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# ---- README -----------------------------------------------------------------------------

def test_readme_leads_with_make_demo_and_make_test():
    text = read("README.md")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S).group(1).splitlines()
    assert [line.split()[:2] for line in first_block[:2]] == [["make", "demo"], ["make", "test"]]


def test_readme_configuration_lists_every_setting_of_both_servers():
    text = read("README.md")
    config = text[text.index("## Configuration"):]
    config = config[:config.index("\n## ", 5)]
    for binary in ROLES.values():
        for var in env_read_by(binary):
            assert f"`{var}`" in config, f"README Configuration lacks {var} ({binary})"
        serve = tdgl(binary, "serve", "--help").stdout
        for flag in re.findall(r"^  (--[a-z][a-z-]*)", serve, re.M):
            if flag != "--help":
                assert f"`{flag}`" in config, f"README Configuration lacks {binary} serve {flag}"
    assert "Exit codes" in text or "exit codes" in text


def test_readme_and_docs_links_resolve():
    for doc in ("README.md", "docs/operations.md", "docs/api.md"):
        base = os.path.dirname(os.path.join(ROOT, doc))
        for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", read(doc)):
            if not target.startswith("http"):
                assert os.path.exists(os.path.join(base, target)), f"{doc} links {target}"


def test_api_doc_covers_every_route_in_the_code():
    doc = read("docs/api.md")
    sources = [f"{d}/{f}" for d in ("primary", "replica")
               for f in sorted(os.listdir(os.path.join(ROOT, d))) if re.match(r".*api\.c$", f)]
    assert "primary/api.c" in sources and "replica/api.c" in sources
    for src in sources:
        code = read(src)
        routes = set(re.findall(r'str(?:n?)cmp\(path, "(/[a-z/_]+)"', code))
        routes |= {a + "<x>" + b for a, b in
                   re.findall(r'api_match\(path, "(/[a-z/_]+/)", "([a-z/_]*)"', code)}
        routes -= {"/api/", "/api"}
        # the regexes still find the routes (a module of a few routes: at least one)
        assert len(routes) >= (3 if src.endswith("/api.c") else 1), (src, routes)
        for r in routes:
            pattern = re.escape(r.split("<x>")[0]) + (r"(?:&lt;[a-z]+&gt;|<[a-z]+>)" +
                                                      re.escape(r.split("<x>")[1])
                                                      if "<x>" in r else "")
            assert re.search(r"#+ [A-Z]+ " + pattern, doc), f"docs/api.md lacks {r} ({src})"

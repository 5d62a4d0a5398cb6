"""CLI manners of both binaries: --help on every command and subcommand, --version, unknown
flags and commands are usage errors (exit 2, message and usage on stderr), missing settings
and a bad conninfo give a clear message and a non-zero exit without echoing a secret."""
import os
import re
import socket
import subprocess

import pytest

from harness import TDGL_BIN, free_port, sanitizer_report



BINARIES = ("tdgl-primary", "tdgl-replica")
# The commands the issue and DESIGN.md promise; more may exist (read from the main --help).
REQUIRED = {
    "tdgl-primary": {"migrate", "serve", "track", "untrack", "tables", "keygen", "keys",
                     "revoke", "purge", "push add", "push list", "push remove"},
    "tdgl-replica": {"migrate", "serve", "source add", "source list", "source remove", "pull",
                     "conflicts", "resolve", "log", "runs", "status"},
}
SECRET = "Sup3rSecretPassw0rd"


def cli(binary, *args, env=None):
    """Runs binary with a clean environment (no TDGL_* from the caller)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("TDGL_")}
    e.update(env or {})
    p = subprocess.run([os.path.join(TDGL_BIN, binary)] + list(args), env=e,
                       capture_output=True, text=True, timeout=30)
    report = sanitizer_report(p.stderr)
    assert not report, f"sanitizer report from {binary} {args}:\n{report}"
    return p


def commands(binary):
    """Commands (and 'cmd sub' subcommands) listed under "commands:" in the main --help."""
    text = cli(binary, "--help").stdout
    found = set()
    for line in text.splitlines():
        if not re.match(r"^  \S", line):
            continue
        synopsis = re.split(r"\s{2,}", line.strip())[0]   # the description follows
        for part in synopsis.split(" | "):
            words = part.split()
            if not words or not re.match(r"^[a-z][a-z-]*$", words[0]):
                continue
            if len(words) > 1 and re.match(r"^[a-z][a-z-]*$", words[1]):
                found.add(f"{words[0]} {words[1]}")
            else:
                found.add(words[0])
    return found


ALL = [(b, c) for b in BINARIES for c in sorted(REQUIRED[b])]


@pytest.mark.parametrize("binary", BINARIES)
def test_main_help_lists_every_command(binary):
    p = cli(binary, "--help")
    assert p.returncode == 0
    assert p.stdout.startswith("usage: "), p.stdout
    listed = commands(binary)
    assert REQUIRED[binary] <= listed, f"missing from --help: {REQUIRED[binary] - listed}"


@pytest.mark.parametrize("binary", BINARIES)
def test_every_listed_command_answers_help(binary):
    for cmd in sorted(commands(binary) | REQUIRED[binary]):
        p = cli(binary, *cmd.split(), "--help")
        assert p.returncode == 0, f"{binary} {cmd} --help exited {p.returncode}:\n{p.stderr}"
        assert re.match(r"^usage: " + re.escape(binary), p.stdout), \
            f"{binary} {cmd} --help: no usage line:\n{p.stdout}"
        assert "--help" in p.stdout


@pytest.mark.parametrize("binary", BINARIES)
def test_command_groups_answer_help(binary):
    groups = {c.split()[0] for c in commands(binary) if " " in c}
    for g in groups:
        p = cli(binary, g, "--help")
        assert p.returncode == 0, f"{binary} {g} --help exited {p.returncode}"
        assert p.stdout.startswith("usage: "), p.stdout


@pytest.mark.parametrize("binary", BINARIES)
def test_version_prints_name_and_version(binary):
    p = cli(binary, "--version")
    assert p.returncode == 0
    assert re.match(re.escape(binary) + r" \d+\.\d+", p.stdout), p.stdout


def options(help_text):
    return set(re.findall(r"^  (--[a-z][a-z-]*)", help_text, re.M))


@pytest.mark.parametrize("binary,cmd", [
    ("tdgl-primary", "keygen"), ("tdgl-primary", "keys"), ("tdgl-primary", "tables"),
    ("tdgl-primary", "untrack"), ("tdgl-primary", "revoke"), ("tdgl-primary", "purge"),
    ("tdgl-primary", "track"), ("tdgl-replica", "status"), ("tdgl-replica", "runs"),
])
def test_help_shows_only_the_commands_own_options(binary, cmd):
    own = {
        "track": {"--status-column", "--attach-columns"}, "keygen": {"--label"},
        "purge": {"--retention"}, "log": {"--status", "--source"}, "runs": {"--source"},
    }
    foreign = {"--status-column", "--attach-columns", "--label", "--retention", "--status",
               "--source"} - own.get(cmd, set())
    shown = options(cli(binary, cmd, "--help").stdout)
    assert not shown & foreign, f"{binary} {cmd} --help lists {shown & foreign}"
    assert own.get(cmd, set()) <= shown


@pytest.mark.parametrize("binary,cmd", ALL)
def test_unknown_flag_is_a_usage_error(binary, cmd):
    p = cli(binary, *cmd.split(), "--no-such-flag", env={"TDGL_DB": "dbname=nothing"})
    assert p.returncode == 2, f"{binary} {cmd}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    assert "no-such-flag" in p.stderr and "usage:" in p.stderr, p.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_unknown_flag_is_a_usage_error_for_every_listed_command(binary):
    for cmd in sorted(commands(binary) - REQUIRED[binary]):     # the others: above
        p = cli(binary, *cmd.split(), "--no-such-flag", env={"TDGL_DB": "dbname=nothing"})
        assert p.returncode == 2, f"{binary} {cmd}: exit {p.returncode}\n{p.stdout}{p.stderr}"
        assert "no-such-flag" in p.stderr and "usage:" in p.stderr, p.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_unknown_command_is_a_usage_error(binary):
    p = cli(binary, "frobnicate")
    assert p.returncode == 2
    assert "frobnicate" in p.stderr and "usage:" in p.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_no_command_is_a_usage_error(binary):
    p = cli(binary)
    assert p.returncode == 2
    assert "usage:" in p.stderr and p.stdout == "", (p.stdout, p.stderr)


@pytest.mark.parametrize("binary,args", [
    ("tdgl-primary", ["migrate"]), ("tdgl-primary", ["serve"]), ("tdgl-primary", ["tables"]),
    ("tdgl-replica", ["migrate"]), ("tdgl-replica", ["serve"]), ("tdgl-replica", ["status"]),
])
def test_missing_database_setting_is_explained(binary, args):
    p = cli(binary, *args)
    assert p.returncode == 2, "a missing setting is a usage error"
    assert "TDGL_DB" in p.stderr and "--db" in p.stderr, p.stderr


@pytest.mark.parametrize("binary,args", [
    ("tdgl-primary", ["tables"]), ("tdgl-primary", ["keys"]), ("tdgl-primary", ["serve"]),
    ("tdgl-replica", ["status"]), ("tdgl-replica", ["source", "list"]),
    ("tdgl-replica", ["serve"]),
])
def test_an_unmigrated_database_asks_for_migrate(primary_cluster, binary, args):
    db = primary_cluster.conninfo(primary_cluster.new_db("empty"))
    p = cli(binary, *args, "--db", db, env={"TDGL_ADMIN_TOKEN": "a-long-enough-admin-token-1"})
    assert p.returncode == 1
    assert p.stderr == f"error: the database has no tdgl schema: run `{binary} migrate`\n", \
        p.stderr


def test_each_role_names_the_other_roles_database(primary, replica):
    for binary, other, cmd in (("tdgl-primary", replica, "tables"),
                               ("tdgl-replica", primary, "status")):
        p = cli(binary, cmd, "--db", other.conninfo)
        assert p.returncode == 1, p.stderr
        assert "holds the tdgl-" in p.stderr and "--db" in p.stderr, p.stderr
        assert f"{binary} migrate` if this site runs both" in p.stderr, p.stderr
    # nothing of the other role was installed
    assert replica.one("SELECT to_regclass('tdgl.change_log')") is None
    assert primary.one("SELECT to_regclass('tdgl_replica.sources')") is None


@pytest.mark.parametrize("binary", BINARIES)
def test_serve_on_a_busy_port_says_so_once_and_starts_nothing(primary, replica, binary):
    site = primary if binary == "tdgl-primary" else replica
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = cli(binary, "serve", "--listen", f"127.0.0.1:{port}", "--db", site.conninfo,
                env={"TDGL_ADMIN_TOKEN": "a-long-enough-admin-token-1"})
    assert p.returncode == 1
    assert p.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n", \
        p.stderr


def test_a_refused_resolve_prints_its_error_once(replica):
    replica.sql("INSERT INTO tdgl_replica.conflicts (source, tbl, pk, op, status, resolution) "
                "VALUES ('s', 't', '{\"id\": 1}', 'Update', 'Resolved', 'Keep Local')")
    cid = replica.one("SELECT max(id) FROM tdgl_replica.conflicts")
    p = cli("tdgl-replica", "resolve", str(cid), "keep-local", "--db", replica.conninfo)
    assert p.returncode == 1   # a refused state change (common/result.h: result_exit_code)
    assert p.stderr == f"error: conflict {cid} is already resolved (Keep Local)\n", p.stderr


def test_database_messages_keep_their_sentences():
    p = cli("tdgl-primary", "tables", "--db", f"host=127.0.0.1 port={free_port()} user=u")
    assert p.returncode == 1
    assert "Connection refused. Is the server running" in p.stderr, p.stderr


def test_replica_serve_without_admin_token_is_explained(replica):
    p = cli("tdgl-replica", "serve", "--listen", f"127.0.0.1:{free_port()}",
            env={"TDGL_DB": replica.conninfo})
    assert p.returncode != 0
    assert "TDGL_ADMIN_TOKEN" in p.stderr, p.stderr


def test_replica_serve_with_a_short_admin_token_is_refused(replica):
    p = cli("tdgl-replica", "serve", "--listen", f"127.0.0.1:{free_port()}",
            env={"TDGL_DB": replica.conninfo, "TDGL_ADMIN_TOKEN": "short"})
    assert p.returncode != 0
    assert "TDGL_ADMIN_TOKEN" in p.stderr and "short" not in p.stdout + p.stderr


BAD_CONNINFOS = [
    # nothing listens there
    f"host=127.0.0.1 port={free_port()} user=u dbname=d password={SECRET} connect_timeout=3",
    # not a conninfo at all
    f"password={SECRET} this-is-not-a-conninfo",
    # URI form with the password inside
    f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/d?connect_timeout=3",
]


@pytest.mark.parametrize("binary,args", [
    ("tdgl-primary", ["migrate"]), ("tdgl-primary", ["serve", "--listen", "127.0.0.1:0"]),
    ("tdgl-primary", ["keys"]), ("tdgl-replica", ["migrate"]),
    ("tdgl-replica", ["serve", "--listen", "127.0.0.1:0"]), ("tdgl-replica", ["status"]),
])
@pytest.mark.parametrize("conninfo", BAD_CONNINFOS, ids=["refused", "malformed", "uri"])
def test_bad_conninfo_exits_1_with_a_clear_message_and_no_secret(binary, args, conninfo):
    env = {"TDGL_DB": conninfo, "TDGL_ADMIN_TOKEN": "a-long-enough-admin-token-123"}
    p = cli(binary, *args, env=env)
    assert p.returncode == 1, f"{binary} {args}: exit {p.returncode}\n{p.stderr}"
    assert "database" in p.stderr.lower(), p.stderr
    assert SECRET not in p.stdout + p.stderr
    # the same through --db
    p = cli(binary, *args, "--db", conninfo, env={"TDGL_ADMIN_TOKEN": env["TDGL_ADMIN_TOKEN"]})
    assert p.returncode == 1
    assert SECRET not in p.stdout + p.stderr


def test_secret_defaults_are_never_printed_in_help():
    env = {"TDGL_ADMIN_TOKEN": "admin-token-from-env-123456", "TDGL_SECRET_KEY": SECRET,
           "TDGL_PUSH_SECRET": SECRET, "TDGL_DB": f"dbname=x password={SECRET}"}
    for binary in BINARIES:
        for cmd in commands(binary) | REQUIRED[binary]:
            p = cli(binary, *cmd.split(), "--help", env=env)
            out = p.stdout + p.stderr
            assert SECRET not in out and "admin-token-from-env" not in out, f"{binary} {cmd}"


@pytest.mark.parametrize("binary", BINARIES)
def test_log_options_go_before_the_command_and_show_in_help(binary):
    """--log-level/--log-format are every command's (TDGL_LOG_LEVEL/TDGL_LOG_FORMAT)."""
    p = cli(binary, "--help")
    assert {"--log-level", "--log-format"} <= options(p.stdout), p.stdout
    p = cli(binary, "--log-format", "json", "--log-level=debug", "--version")
    assert p.returncode == 0 and binary in p.stdout, p.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_a_bad_log_level_is_a_usage_error(binary):
    p = cli(binary, "--log-level", "loud", "--version")
    assert p.returncode == 2 and "--log-level" in p.stderr and "usage:" in p.stderr, p.stderr
    p = cli(binary, "--version", env={"TDGL_LOG_FORMAT": "xml"})
    assert p.returncode == 2 and "--log-format" in p.stderr, p.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_serve_help_lists_the_http_timeout(binary):
    p = cli(binary, "serve", "--help")
    assert "--http-timeout" in options(p.stdout) and "TDGL_HTTP_TIMEOUT" in p.stdout, p.stdout

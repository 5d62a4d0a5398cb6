#!/usr/bin/python3
"""Replication CPU per change while the primary is being written (figure 2's load).

Runs figure 2's tdgl half (pgbench, 4 clients, single-row INSERT transactions, replica in
long-poll mode) and reports CPU seconds per process from /proc around the load: the
replica's and the primary's PostgreSQL backends, tdgl-primary, tdgl-replica, per change.
Figure 2's TPS ratio swings widely on a shared 2-vCPU machine; CPU per change does not, so
this is how before/after of the streaming path is measured (BENCHMARKS.md).

  bench/streaming_cpu.py                         this checkout, once
  bench/streaming_cpu.py --rounds 3 A B          checkouts A and B (each built), alternated
  bench/streaming_cpu.py --statements            also the replica's top statements
                                                 (pg_stat_statements, track = all)
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HZ = os.sysconf("SC_CLK_TCK")


def cpu_by_pid():
    """{pid: (ppid, cpu seconds, cmdline)} of every process."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ")
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / HZ, cmd)
    return out


def group(pid, ppid, cmd, postmasters):
    if "tdgl-primary" in cmd or "tdgl-replica" in cmd:
        return cmd.split()[0].rsplit("/", 1)[-1]
    for site, pm in postmasters.items():
        if ppid == pm and "127.0.0.1" in cmd:     # client backends (tdgl's; pgbench's exit first)
            return f"{site} PostgreSQL backends"
    return None


def one_run(repo, txns, statements):
    """Runs the load against repo's binaries in a fresh process; prints one result line."""
    args = [sys.executable, os.path.abspath(__file__), "--child", repo, "--txns", str(txns)]
    if statements:
        args.append("--statements")
    out = subprocess.run(args, capture_output=True, text=True)
    sys.stdout.write(out.stdout if out.returncode == 0 else out.stdout + out.stderr)


def child(repo, txns, statements):
    sys.path.insert(0, os.path.join(repo, "bench"))
    os.chdir(repo)
    import run as R
    import sites
    if statements:
        orig = sites.Cluster.__init__

        def init(self, workdir, name, extra_conf=""):
            orig(self, workdir, name, extra_conf + "shared_preload_libraries = "
                 "'pg_stat_statements'\npg_stat_statements.track = all\n"
                 "pg_stat_statements.track_planning = on\n")
        sites.Cluster.__init__ = init
    b = sites.Bench("/tmp/tdgl-streaming-cpu")
    try:
        pms = {}
        for site, c in (("primary", b.primary), ("replica", b.replica)):
            with open(os.path.join(c.data, "postmaster.pid")) as f:
                pms[site] = int(f.readline())
        p, r, _, _, _, _ = R.tdgl_pair(b, "f2tdgl")
        p.sql("CHECKPOINT")
        if statements:
            r.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            r.sql("SELECT pg_stat_statements_reset()")
        pages0 = r.one("SELECT coalesce(sum(pages), 0) FROM tdgl_replica.runs")
        s0 = cpu_by_pid()
        tps, _ = R.pgbench(b.primary, "f2tdgl", R.INSERT_SQL, transactions=txns)
        R.marker(p, -1)
        R.wait_row(r, -1, 600)
        s1 = cpu_by_pid()
        pages = r.one("SELECT coalesce(sum(pages), 0) FROM tdgl_replica.runs") - pages0
        per = {}
        for pid, (ppid, cpu, cmd) in s1.items():
            g = group(pid, ppid, cmd, pms)
            if g:
                per[g] = per.get(g, 0) + cpu - s0.get(pid, (0, 0, ""))[1]
        parts = ", ".join(f"{g} {v * 1e6 / txns:.0f}" for g, v in sorted(per.items()))
        print(f"{repo}: source {tps:,.0f} tps, {txns / max(pages, 1):.0f} changes a page, "
              f"replication {sum(per.values()) * 1e6 / txns:.0f} us a change ({parts})")
        if statements:
            for row in r.sql("SELECT calls, round(total_exec_time::numeric, 1), "
                             "round(total_plan_time::numeric, 1), left(regexp_replace(query, "
                             "'\\s+', ' ', 'g'), 110) FROM pg_stat_statements ORDER BY "
                             "total_exec_time + total_plan_time DESC LIMIT 15"):
                print("   calls %s exec %s ms plan %s ms  %s" % row)
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repos", nargs="*", help="checkouts to compare (default: this one)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--txns", type=int, default=20000)
    ap.add_argument("--statements", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.txns, a.statements)
        return
    repos = [os.path.abspath(x) for x in a.repos] or [os.path.dirname(HERE)]
    for _ in range(a.rounds):
        for repo in repos:
            one_run(repo, a.txns, a.statements)
            time.sleep(1)


if __name__ == "__main__":
    main()

"""pytest fixtures: one primary-site and one replica-site PostgreSQL cluster per session
(each test gets fresh databases in them), servers stopped after each test, and server logs
printed when a test fails. Tests that crash PostgreSQL start their own cluster (`own_cluster`)."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Server, run  # noqa: E402
from sites import PrimarySite, ReplicaSite  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "packaging: builds or runs the packaging (make demo, "
                            "make install, the Dockerfile's build); skipped under sanitizers")


def pytest_collection_modifyitems(config, items):
    # The sanitizer pass (`make SANITIZE=1 test`) re-checks the C code; the packaging tests
    # build and run the ordinary binaries, which the first pass already covered.
    if os.environ.get("TDGL_SANITIZE"):
        skip = pytest.mark.skip(reason="packaging is checked by the ordinary pass")
        for item in items:
            if "packaging" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def primary_cluster():
    c = Cluster("primary")
    yield c
    c.destroy()


@pytest.fixture(scope="session")
def replica_cluster():
    c = Cluster("replica")
    yield c
    c.destroy()


@pytest.fixture
def own_cluster():
    """A cluster of the test's own, for tests that stop or crash PostgreSQL."""
    made = []

    def make(name="own", env=None):
        made.append(Cluster(name, env))
        return made[-1]
    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def logdir():
    d = tempfile.mkdtemp(prefix="tdgl-logs-")
    yield d


@pytest.fixture
def servers(request, logdir):
    """Registry of servers started by the test; all stopped at the end."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    reports = []
    for s in started:
        try:
            s.stop()
        except AssertionError as e:
            print(e)
        if failed:
            print(f"\n----- {s.binary} log ({s.logfile}) -----\n{s.log()[-6000:]}")
        report = s.sanitizer_report()
        if report:
            reports.append(f"{s.binary} ({s.logfile}):\n{report}")
    # Under `make SANITIZE=1 test` a sanitizer report from any server fails the test.
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def primary(primary_cluster, servers, logdir):
    """A migrated primary site in a fresh database (server not started: call .serve())."""
    site = PrimarySite(primary_cluster, primary_cluster.new_db("p"), servers, logdir)
    site.migrate()
    yield site
    site.close()


@pytest.fixture
def replica(replica_cluster, servers, logdir):
    """A migrated replica site in a fresh database (server not started: call .serve())."""
    site = ReplicaSite(replica_cluster, replica_cluster.new_db("r"), servers, logdir)
    site.migrate()
    yield site
    site.close()


__all__ = ["Server", "run"]

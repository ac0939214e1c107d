"""The project's own Neo4j server as a user runs it (issue 12, items 7 and 9).

One private instance for the module, created and restarted for real through `sparsetopo db`;
ports are occupied by real listening sockets and real TIME-WAIT sockets.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sparsetopo.graphstore.server import ADMIN_TOOL, LocalServer, Memory, free_port

pytestmark = pytest.mark.neo4j

ROOT = Path(__file__).resolve().parents[1]
SMALL = Memory(heap="768m", initial_heap="256m", page_cache="64m")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    # Later -Xms/-Xmx win: the CLI's `db start` runs this instance with a small heap.
    return env | {"PYTHONPATH": str(ROOT), "SPARSETOPO_HOME": str(home), "SPARSETOPO_JVM_OPTIONS": "-Xms256m -Xmx768m"}


def _db(home: Path, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "db", *args],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [
        line for line in proc.stderr.strip().splitlines() if line.strip() and not line.startswith("starting Neo4j")
    ]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


class _CmdlineWatch(threading.Thread):
    """Reads every process's command line until stopped: what `ps` would show."""

    def __init__(self, password_file: Path):
        super().__init__(daemon=True)
        self.password_file, self.stop, self.seen_admin, self.seen_password = (
            password_file,
            threading.Event(),
            False,
            False,
        )

    def run(self):
        while not self.stop.is_set():
            password = self.password_file.read_text().strip() if self.password_file.exists() else None
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if ADMIN_TOOL in cmdline:
                    self.seen_admin = True
                    if password and password in cmdline:
                        self.seen_password = True
            time.sleep(0.005)


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    home = tmp_path_factory.mktemp("db-home")
    server = LocalServer(home / "neo4j", SMALL)
    watch = _CmdlineWatch(server.password_file)
    watch.start()
    try:
        server.start(bolt_port=free_port(), http_port=free_port())
    finally:
        watch.stop.set()
        watch.join()
    server.watch = watch
    try:
        yield home, server
    finally:
        server.stop()


def _tcp_states(port: int) -> set[str]:
    states = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if int(local.rsplit(":", 1)[1], 16) == port:
                states.add(state)
    return states


def _leave_time_wait(port: int) -> None:
    """A connection to `port` closed first by its accepting side: a TIME-WAIT socket on `port`."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        time.sleep(0.05)
        client.close()
    assert "06" in _tcp_states(port)  # 06 = TIME_WAIT


def _listen(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the stopped server left TIME-WAIT sockets
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_db_stop_then_start_restarts_at_once_despite_time_wait_sockets(instance):
    home, server = instance
    from neo4j import GraphDatabase

    settings = server.settings()
    with GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password)) as driver:
        driver.execute_query("RETURN 1")
    stop = _db(home, "stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
    state = server._state()
    for port in (state["bolt_port"], state["http_port"]):
        _leave_time_wait(port)
    started = time.monotonic()
    start = _db(home, "start")
    assert start.returncode == 0, start.stderr
    assert "running" in start.stdout and server.pid
    assert time.monotonic() - started < 180


@pytest.mark.parametrize("which", ["bolt", "http"])
def test_a_port_really_taken_is_named_without_advice_to_remove_data(instance, which):
    home, server = instance
    _db(home, "stop")
    port = server._state()[f"{which}_port"]
    with _listen(port):
        proc = _db(home, "start")
    line = _one_line_error(proc)
    assert str(port) in line and ("Bolt" if which == "bolt" else "HTTP") in line
    assert "remove" not in line.lower() and "Traceback" not in proc.stderr
    assert not server.pid
    assert (server.data_dir).exists()
    again = _db(home, "start")  # the port is free again: the instance starts as it was
    assert again.returncode == 0, again.stderr


def test_the_password_never_appears_in_ps_while_the_instance_is_created(instance):
    _home, server = instance
    assert server.watch.seen_admin, "the watcher never saw neo4j-admin run"
    assert not server.watch.seen_password
    assert not list(server.home.glob("*.args"))  # the @file is gone


def test_the_instance_is_private(instance):
    _home, server = instance
    assert server.pid
    open_to_others = []
    for dirpath, dirnames, filenames in os.walk(server.home):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() or path.is_socket():
                continue
            if path.stat().st_mode & 0o077:
                open_to_others.append(f"{path} {oct(path.stat().st_mode & 0o777)}")
    assert server.home.stat().st_mode & 0o777 == 0o700
    assert not open_to_others, open_to_others
    assert any(server.data_dir.rglob("neostore*")) and server.log_file.exists()


def _nice_of(pid: int, tid: int) -> int:
    # /proc/PID/task/TID/stat: field 19 is the nice value; the command name (field 2) may hold spaces.
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_the_instance_runs_below_the_users_processes(instance):
    _home, server = instance
    threads = [int(t) for t in os.listdir(f"/proc/{server.pid}/task")]
    assert len(threads) > 20  # the JVM's threads, started after the launch, not just its first one
    want = min(19, os.nice(0) + 10)
    assert {_nice_of(server.pid, t) for t in threads} == {want}
    autogroup = Path(f"/proc/{server.pid}/autogroup")
    if autogroup.exists():  # sessions share CPU first, so the server's session is niced as well
        assert autogroup.read_text().split()[-1] == "10", autogroup.read_text()


def test_a_bad_server_niceness_is_one_sentence_and_the_instance_starts_after(instance):
    home, server = instance
    assert _db(home, "stop").returncode == 0
    env = _env(home) | {"SPARSETOPO_SERVER_NICE": "low"}
    proc = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "db", "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "SPARSETOPO_SERVER_NICE must be a whole number from 0 to 19, got 'low'" in _one_line_error(proc)
    assert server.pid is None
    again = _db(home, "start")
    assert again.returncode == 0, again.stderr
    assert server.pid and any(server.data_dir.rglob("neostore*"))


def test_the_instance_advertises_the_ports_it_listens_on(instance):
    import json
    import urllib.request

    _home, server = instance
    state = server._state()
    bolt, http = state["bolt_port"], state["http_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=30) as response:
        discovery = json.loads(response.read())
    assert discovery["bolt_direct"].endswith(f"127.0.0.1:{bolt}"), discovery
    assert all(":7687" not in str(v) and ":7474" not in str(v) for v in discovery.values()), discovery
    log = server.log_file.read_text()
    assert f"Remote interface available at http://127.0.0.1:{http}/" in log
    assert "localhost:7474" not in log


def test_a_server_killed_during_train_is_one_sentence_and_leaves_whole_steps(instance):
    """Issue 12, item 6: kill -9 of the server while `train` streams into it."""
    import json
    import signal

    from neo4j import GraphDatabase

    home, server = instance
    if not server.pid:
        server.start()
    env = _env(home) | {"SPARSETOPO_WRITER_LEASE": "3"}
    train = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparsetopo.cli",
            "train",
            "--dataset",
            "digits",
            "--hidden",
            "64,64",
            "--epochs",
            "400",
            "--epsilon",
            "4",
            "--run-id",
            "killed",
            "--threads",
            "1",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    settings = server.settings()
    deadline = time.monotonic() + 180
    with GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password)) as driver:
        while time.monotonic() < deadline:
            n = driver.execute_query("MATCH (s:Snapshot {run_id: 'killed'}) RETURN count(s) AS n").records[0]["n"]
            if n >= 3:
                break
            time.sleep(0.2)
    assert n >= 3, train.stderr.read() if train.poll() is not None else "no snapshots stored"
    os.kill(server.pid, signal.SIGKILL)
    _, err = train.communicate(timeout=180)
    assert train.returncode == 1
    assert "Traceback" not in err and "retried" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach the Neo4j server"), err

    server.start()
    time.sleep(4)  # the killed writer's lease (3 s) has expired
    show = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "runs", "show", "killed", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = json.loads(show.stdout)["run"]
    assert run["writer"] == "gone"
    check = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "runs", "check", "killed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr

"""The project's own Neo4j server: built from Maven Central, run detached on 127.0.0.1.

Layout of an instance directory (default: <data home>/neo4j):
    conf/neo4j.conf   generated once; ports fixed at creation
    data/ logs/       Neo4j's own
    password          the generated password of user neo4j (mode 0600)
    server.json       ports and the pid of the running server

The server is Neo4j's community entry point (org.neo4j.server.CommunityEntryPoint) run
on the dependency closure of org.neo4j:neo4j + org.neo4j.app:neo4j-server: Bolt, HTTP
and the Query API, as in a packaged installation. The initial password is set with
neo4j-admin's `dbms set-initial-password` before the first start (read from a private @file, so
`ps` never shows it), so the server never runs with the default credentials. The instance is
private (directories 700, files 600) and LOAD CSV can reach neither files nor the network.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ServerUnavailable
from .maven import run_maven
from .settings import ConnectionSettings, cache_home, data_home, server_niceness

NEO4J_VERSION = "5.26.30"
POM = Path(__file__).parent / "server" / "pom.xml"
ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
USER = "neo4j"


# The options Neo4j's own launcher passes (server.jvm.additional in its shipped neo4j.conf).
# Without the --add-opens the page cache and Bolt's Netty fall back to slower buffer access
# ("Reflection access to java.nio.DirectByteBuffer is not available, using fallback mode").
JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+AlwaysPreTouch",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
    "-XX:+ExitOnOutOfMemoryError",
    "-Dfile.encoding=UTF-8",
)


@dataclass(frozen=True)
class Memory:
    # Neo4j caps one transaction's memory at 70 % of the heap; a reader may pull a dense snapshot's
    # 2.8M positions and weights in one transaction.
    heap: str = "6g"
    # A heap that starts small makes G1 resize it while the first snapshots are written, which
    # slows those writes (benchmarks/export_bench.py; CHANGELOG.md, 0.1.0).
    initial_heap: str = "4g"
    page_cache: str = "2g"


DEFAULT_MEMORY = Memory()
TEST_MEMORY = Memory(heap="1g", initial_heap="512m", page_cache="512m")


def jar_dir() -> Path:
    """Where the server's jars are gathered; shared by every instance (tests included)."""
    explicit = os.environ.get("SPARSETOPO_NEO4J_LIB")
    if explicit:
        return Path(explicit)
    return cache_home() / f"neo4j-{NEO4J_VERSION}" / "lib"


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise ServerUnavailable("Java 17 is needed to run the embedded Neo4j server, and `java` is not on PATH")
    return java


def ensure_built(quiet: bool = True) -> Path:
    """Gather the server's jars with Maven once; later calls only check the marker file."""
    lib = jar_dir()
    marker = lib / ".complete"
    if marker.exists():
        return lib
    lib.mkdir(parents=True, exist_ok=True)
    result = run_maven(POM, lib, [], quiet)
    if result is None:
        raise ServerUnavailable("Maven (`mvn`) is needed once to gather the Neo4j server from Maven Central")
    if result.returncode != 0:
        tail = (result.stdout or "")[-2000:] if quiet else ""
        raise ServerUnavailable(
            f"gathering the Neo4j server with Maven failed (exit {result.returncode}) {tail}".strip()
        )
    if not any(lib.glob(f"neo4j-{NEO4J_VERSION}.jar")):
        raise ServerUnavailable(f"Maven finished but {lib} holds no neo4j-{NEO4J_VERSION}.jar")
    marker.write_text(NEO4J_VERSION + "\n")
    return lib


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server binds (Netty sets SO_REUSEADDR): TIME-WAIT sockets left by a server that just
        # stopped or crashed do not make the port taken; only a listening socket does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# LOAD CSV can read neither the file system nor the network: a read-only query must not make the
# server fetch URLs or read its files (internal.* is the 5.26 name of the IP blocklist).
_LOAD_CSV_CLOSED = """dbms.security.allow_csv_import_from_file_urls=false
internal.dbms.cypher_ip_blocklist=0.0.0.0/0,::/0
"""


def _advertised(bolt: int, http: int) -> str:
    """Advertise the ports the instance listens on (GET / and neo4j.log said 7687/7474 otherwise)."""
    return f"server.bolt.advertised_address=127.0.0.1:{bolt}\nserver.http.advertised_address=127.0.0.1:{http}\n"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _private(root: Path) -> None:
    """Only the owner may read the instance: data, logs, password (dirs 700, files 600)."""
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o700, follow_symlinks=False)
        for f in filenames:
            path = os.path.join(dirpath, f)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _set_autogroup_niceness(pid: int, niceness: int) -> None:
    """Give the server's session its nice value too. With the kernel's autogroup scheduling (the
    default on desktop Linux), CPU time is shared between sessions first and nice only counts
    within one, and the server runs in a session of its own (CHANGELOG: part c's batches beside
    the server's writes took as long at nice 10 alone as at nice 0)."""
    for _ in range(5):
        try:
            Path(f"/proc/{pid}/autogroup").write_text(f"{niceness}\n")
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                return  # no autogroup scheduling here (or not allowed): nice alone then decides
            time.sleep(0.11)  # the kernel takes one such change per 100 ms from an unprivileged user


class LocalServer:
    """One Neo4j instance directory and the process serving it."""

    def __init__(self, home: Path | None = None, memory: Memory = DEFAULT_MEMORY):
        self.home = Path(home) if home else data_home() / "neo4j"
        self.memory = memory

    # -- files -----------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    @property
    def state_file(self) -> Path:
        return self.home / "server.json"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "neo4j.log"

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, **updates) -> None:
        state = self._state() | updates
        _write_private(self.state_file, json.dumps(state, indent=2))

    @property
    def bolt_port(self) -> int | None:
        return self._state().get("bolt_port")

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def pid(self) -> int | None:
        pid = self._state().get("pid")
        return pid if _pid_alive(pid) else None

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def settings(self) -> ConnectionSettings:
        return ConnectionSettings(uri=self.uri, user=USER, password=self.password(), external=False)

    @contextmanager
    def _lock(self):
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- creation --------------------------------------------------------------
    def _initialise(self, lib: Path, bolt_port: int | None, http_port: int | None) -> None:
        """Write conf and credentials once, before the server's first start."""
        if (self.conf_dir / "neo4j.conf").exists():
            return
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in ("conf", "data", "logs", "run", "import", "plugins"):
            (self.home / d).mkdir(mode=0o700, parents=True, exist_ok=True)
        bolt = bolt_port or (7687 if _port_free(7687) else free_port())
        http = http_port or (7474 if _port_free(7474) and bolt != 7474 else free_port())
        conf = f"""# generated by sparsetopo; ports fixed when this instance was created
server.directories.data={self.home / "data"}
server.directories.logs={self.home / "logs"}
server.directories.run={self.home / "run"}
server.directories.import={self.home / "import"}
server.directories.plugins={self.home / "plugins"}
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:{bolt}
server.http.enabled=true
server.http.listen_address=127.0.0.1:{http}
{_advertised(bolt, http)}server.https.enabled=false
dbms.security.auth_enabled=true
dbms.usage_report.enabled=false
server.memory.pagecache.size={self.memory.page_cache}
# bounded transaction logs: keep about 512 MB, rotate every 128 MB
db.tx_log.rotation.retention_policy=512M size
db.tx_log.rotation.size=128M
db.logs.query.enabled=OFF
{_LOAD_CSV_CLOSED}"""
        _write_private(self.conf_dir / "neo4j.conf", conf)
        # A leading "-" would be read as an option by neo4j-admin.
        password = "s" + secrets.token_urlsafe(24)
        _write_private(self.password_file, password + "\n")
        # Not on the command line, where `ps` shows it: neo4j-admin reads arguments from an @file
        # (picocli AtFiles, documented for every admin command); the file is private and removed.
        argfile = self.home / ".initial-password.args"
        _write_private(argfile, password + "\n")
        try:
            result = subprocess.run(
                [_java(), "-cp", f"{lib}/*", ADMIN_TOOL, "dbms", "set-initial-password", f"@{argfile}"],
                env=self._env(),
                capture_output=True,
                text=True,
                umask=0o077,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.conf_dir, ignore_errors=True)
            raise ServerUnavailable(f"setting the Neo4j password failed: {result.stderr.strip()[-500:]}")
        self._save_state(bolt_port=bolt, http_port=http, version=NEO4J_VERSION)

    def _env(self) -> dict:
        return os.environ | {"NEO4J_HOME": str(self.home), "NEO4J_CONF": str(self.conf_dir)}

    # -- lifecycle -------------------------------------------------------------
    def start(
        self, timeout: float = 180.0, bolt_port: int | None = None, http_port: int | None = None
    ) -> ConnectionSettings:
        """Start the server detached unless it runs already; return once Bolt answers."""
        niceness = server_niceness()  # nice(1) execs java: the pid is the JVM's, its threads inherit it
        with self._lock():
            if self.pid:
                self.wait_until_ready(timeout)
                return self.settings()
            lib = ensure_built()
            self._initialise(lib, bolt_port, http_port)
            self._update_conf()
            self._check_ports()
            _private(self.home)  # instances created before files were private
            console = os.fdopen(
                os.open(self.home / "logs" / "console.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
            )
            cmd = [
                *(["nice", "-n", str(niceness)] if niceness and shutil.which("nice") else []),
                _java(),
                f"-Xms{self.memory.initial_heap}",
                f"-Xmx{self.memory.heap}",
                *JVM_OPTIONS,
                *os.environ.get("SPARSETOPO_JVM_OPTIONS", "").split(),
                "-cp",
                f"{lib}/*",
                ENTRY_POINT,
                f"--home-dir={self.home}",
                f"--config-dir={self.conf_dir}",
            ]
            proc = subprocess.Popen(
                cmd,
                cwd=self.home,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,
            )
            console.close()
            _set_autogroup_niceness(proc.pid, niceness)
            self._save_state(pid=proc.pid, started_at=time.time())
            self.wait_until_ready(timeout, proc=proc)
            return self.settings()

    def _update_conf(self) -> None:
        """Settings added since an instance was created: advertised ports, LOAD CSV closed."""
        path = self.conf_dir / "neo4j.conf"
        conf = path.read_text()
        state = self._state()
        added = ""
        if "advertised_address=127.0.0.1:" not in conf and state.get("bolt_port") and state.get("http_port"):
            added += _advertised(state["bolt_port"], state["http_port"])
        if "cypher_ip_blocklist" not in conf:
            added += _LOAD_CSV_CLOSED
        if added:
            _write_private(path, conf.rstrip("\n") + "\n# added by a later sparsetopo\n" + added)

    def _check_ports(self) -> None:
        """Refuse to start when another program listens on this instance's ports (fixed at creation)."""
        state = self._state()
        for what, key, setting in (
            ("Bolt", "bolt_port", "server.bolt.listen_address"),
            ("HTTP", "http_port", "server.http.listen_address"),
        ):
            port = state.get(key)
            if port and not _port_free(port):
                raise ServerUnavailable(
                    f"the {what} port {port} on 127.0.0.1 of the Neo4j instance in {self.home} (fixed by {setting} "
                    f"in its neo4j.conf) is taken by another program; stop that program (`ss -ltnp 'sport = :{port}'` "
                    "names it) and run `sparsetopo db start` again"
                )

    def wait_until_ready(self, timeout: float, proc: subprocess.Popen | None = None) -> None:
        from neo4j.exceptions import AuthError, ServiceUnavailable

        from .driver import open_driver

        deadline = time.monotonic() + timeout
        settings = self.settings()
        while True:
            if proc is not None and proc.poll() is not None or proc is None and not self.pid:
                raise ServerUnavailable(
                    f"the Neo4j server stopped while starting; see {self.log_file} and {self.home / 'logs' / 'console.log'}"
                )
            try:
                with open_driver(settings) as driver:
                    driver.verify_connectivity()
                    driver.execute_query("RETURN 1")
                    return
            except AuthError:
                raise ServerUnavailable(
                    f"the server at {settings.uri} rejects the password in {self.password_file}"
                ) from None
            except (ServiceUnavailable, OSError):
                pass
            except Exception:  # noqa: BLE001 - the database may still be coming up after Bolt answers
                pass
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"Neo4j did not answer on {settings.uri} within {timeout:.0f} s; see {self.log_file}"
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server; True if one was running."""
        with self._lock():
            pid = self.pid
            if not pid:
                return False
            os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            self._save_state(pid=None)
            return True

    def store_size(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.data_dir):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
        return total

    def status(self) -> dict:
        pid = self.pid
        state = self._state()
        info = {
            "running": bool(pid),
            "pid": pid,
            "uri": self.uri if state.get("bolt_port") else None,
            "http": f"http://127.0.0.1:{state['http_port']}" if state.get("http_port") else None,
            "user": USER,
            "password_file": str(self.password_file),
            "home": str(self.home),
            "data_directory": str(self.data_dir),
            "store_size_bytes": self.store_size() if self.data_dir.exists() else 0,
            "version": None,
            "embedded": True,
        }
        if pid:
            info["version"] = server_version(self.settings())
        return info


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def server_version(settings: ConnectionSettings) -> str | None:
    from .driver import open_driver

    try:
        with open_driver(settings) as driver:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN versions[0] AS v, edition AS e"
            )
            return f"{records[0]['v']} {records[0]['e']}" if records else None
    except Exception:  # noqa: BLE001 - status must not fail because the server is busy
        return None


def server_status() -> dict:
    """What `sparsetopo db status` shows: the external server's (NEO4J_URI) or the project's own."""
    from .settings import external_settings

    ext = external_settings()
    if ext is None:
        return LocalServer().status()
    version = server_version(ext)
    return {
        "running": version is not None,
        "uri": ext.uri,
        "user": ext.user,
        "password_file": None,
        "version": version,
        "embedded": False,
    }

"""A real Neo4j 5.26 LTS Community server for tests, ``perf/`` and ``make neo4j``.

Neo4j runs as an embedded DBMS with the Bolt connector on (``127.0.0.1``, no auth, no TLS),
started by a tiny Java main (``tests/services/neo4j/src/main/java/.../Neo4jLauncher.java``) on
the machine's Java 17, from Maven Central jars::

    from tests.services.neo4j import Neo4jServer

    with Neo4jServer(tmp_path / "neo4j") as bolt_uri:  # a free port unless one is given
        driver = neo4j.GraphDatabase.driver(bolt_uri, auth=None)

or from the shell: ``make neo4j`` (``python -m tests.services.neo4j --port 7687``).

The first start builds, once per version of the pom and the launcher: ``mvn
dependency:copy-dependencies`` copies the runtime jars (about 120 MB, downloaded through
``~/.m2``) into ``~/.cache/ringfence/neo4j-<version>-<hash>/lib`` (``$RINGFENCE_CACHE_DIR``
moves the cache), and ``javac`` compiles the launcher into ``launcher.jar`` beside them. That
first run also records a class-data-sharing archive of the classes Neo4j loads (Java's
AppCDS, written when the JVM exits); later starts map it and reach "ready" about a second
sooner.

JVM flags, all checked on OpenJDK 17 (see :data:`JVM_FLAGS`): without the ``--add-opens`` the
server still starts, but its page cache falls back to a slower mode (``java.nio``) and the
native hints on transaction-log files fail with "Incorrect file descriptor" (``sun.nio.ch``).

Errors: :class:`Neo4jServerError` when Java, ``javac`` or Maven is missing, the build fails, or
the server does not come up; the message names the tool or the log file to read. Nothing here
skips.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from tests.services.ports import free_port

PROJECT_DIR: Final = Path(__file__).with_name("neo4j")
"""The Maven project: ``pom.xml`` (the Neo4j version) and the launcher's source."""

POM: Final = PROJECT_DIR / "pom.xml"
LAUNCHER_SOURCE: Final = PROJECT_DIR / "src/main/java/ringfence/services/Neo4jLauncher.java"
MAIN_CLASS: Final = "ringfence.services.Neo4jLauncher"
READY: Final = "RINGFENCE-NEO4J-READY"

JVM_FLAGS: Final = (
    # The page cache reaches DirectByteBuffer internals; without it: "Reflection access to
    # java.nio.DirectByteBuffer is not available, using fallback mode".
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    # File descriptors for posix_fadvise on transaction logs.
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
)
"""Flags every start passes (heap, class path and class-data sharing are added per start)."""

QUICK_JVM_ARGS: Final = ("-XX:TieredStopAtLevel=1",)
"""For short-lived servers (a test session): compile with C1 only. On two cores this halves
both the start and the first queries' time (Cypher planning runs cold); long runs such as
``perf/`` want the default, C2."""


class Neo4jServerError(RuntimeError):
    """The Neo4j test server could not be built, started or reached."""


def neo4j_version() -> str:
    """The Neo4j version the pom pins (``<neo4j.version>``)."""
    match = re.search(r"<neo4j\.version>([^<]+)</neo4j\.version>", POM.read_text())
    if match is None:
        raise Neo4jServerError(f"{POM}: no <neo4j.version> property")
    return match.group(1).strip()


def cache_root() -> Path:
    """Where built launchers live: ``$RINGFENCE_CACHE_DIR``, else ``~/.cache/ringfence``."""
    env = os.environ.get("RINGFENCE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ringfence"


def _tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Neo4jServerError(
            f"the Neo4j test server needs `{name}` on PATH ({why}); install OpenJDK 17 "
            "(openjdk-17-jdk-headless) and Maven 3.8+ (maven)"
        )
    return path


@dataclass(frozen=True)
class Neo4jBuild:
    """A built launcher: the jars, the compiled main and the class-data archive's place."""

    home: Path
    java: str

    @property
    def classpath(self) -> str:
        """The class path: the launcher jar, then every Neo4j jar."""
        return f"{self.home / 'launcher.jar'}{os.pathsep}{self.home / 'lib'}{os.sep}*"

    @property
    def cds_archive(self) -> Path:
        """The class-data-sharing archive for this build and this Java installation."""
        real = Path(self.java).resolve()
        stamp = f"{real}:{real.stat().st_mtime_ns}".encode()
        return self.home / f"classes-{hashlib.sha256(stamp).hexdigest()[:10]}.jsa"


def build(cache_dir: Path | None = None) -> Neo4jBuild:
    """Download the jars and compile the launcher, unless already done; safe to run in parallel.

    Args:
        cache_dir: where builds are kept (default :func:`cache_root`).

    Returns:
        The build (its folder is named after the Neo4j version and a hash of the sources).
    """
    java = _tool("java", "to run Neo4j")
    root = cache_dir if cache_dir is not None else cache_root()
    digest = hashlib.sha256(POM.read_bytes() + LAUNCHER_SOURCE.read_bytes()).hexdigest()[:10]
    home = root / f"neo4j-{neo4j_version()}-{digest}"
    done = home / ".complete"
    if done.exists():
        return Neo4jBuild(home, java)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build_into(home, root)
    return Neo4jBuild(home, java)


def _build_into(home: Path, root: Path) -> None:
    mvn = _tool("mvn", "to download the Neo4j jars from Maven Central")
    javac = _tool("javac", "to compile the launcher")
    tmp = Path(tempfile.mkdtemp(prefix=f"{home.name}.tmp-", dir=root))
    try:
        _run(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp / 'lib'}",
            ],
            "Maven could not fetch the Neo4j jars (is Maven Central reachable?)",
        )
        classes = tmp / "classes"
        _run(
            [
                javac,
                "--release",
                "17",
                "-nowarn",
                "-d",
                str(classes),
                "-cp",
                f"{tmp / 'lib'}{os.sep}*",
                str(LAUNCHER_SOURCE),
            ],
            "javac could not compile the Neo4j launcher",
        )
        with zipfile.ZipFile(tmp / "launcher.jar", "w") as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        shutil.rmtree(classes)
        (tmp / ".complete").write_text(f"neo4j {neo4j_version()}\n")
        if home.exists():
            shutil.rmtree(home)
        os.replace(tmp, home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        out = (result.stdout + result.stderr).strip()[-4000:]
        raise Neo4jServerError(f"{what}: `{' '.join(cmd)}` exited {result.returncode}\n{out}")


class Neo4jServer:
    """One Neo4j server process with its own data directory.

    Args:
        data_dir: the DBMS home (created if missing): ``data/``, ``logs/`` (Neo4j's
            ``debug.log``) and ``neo4j-launcher.log`` (the JVM's output).
        port: the Bolt port on 127.0.0.1; a free one if not given.
        heap_mb: the JVM heap (``-Xms`` and ``-Xmx``).
        pagecache_mb: Neo4j's page cache.
        start_timeout: seconds to wait for "ready" (a first start also downloads the jars).
        stop_timeout: seconds to wait after SIGTERM before killing the process.
        cache_dir: where builds are kept (default :func:`cache_root`).
        jvm_args: more JVM flags, after :data:`JVM_FLAGS`.

    Used as a context manager, it yields the Bolt URI and stops the server on exit.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        heap_mb: int = 768,
        pagecache_mb: int = 64,
        start_timeout: float = 180.0,
        stop_timeout: float = 30.0,
        cache_dir: Path | None = None,
        jvm_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.heap_mb = heap_mb
        self.pagecache_mb = pagecache_mb
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.cache_dir = cache_dir
        self.jvm_args = tuple(jvm_args)
        self.start_seconds: float | None = None
        """Seconds from launching the JVM to Bolt answering, once started."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cds_dump: Path | None = None
        self._cds_archive: Path | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Neo4jServer({str(self.data_dir)!r}, port={self.port}, {state})"

    @property
    def log_path(self) -> Path:
        """The JVM's stdout and stderr (Neo4j's own debug log is ``logs/debug.log``)."""
        return self.data_dir / "neo4j-launcher.log"

    @property
    def bolt_uri(self) -> str:
        """``bolt://127.0.0.1:<port>`` of the running server."""
        if not self.running:
            raise Neo4jServerError("the Neo4j server is not running")
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Build if needed, start the server, wait until Bolt answers; returns the Bolt URI."""
        if self.running:
            return self.bolt_uri
        began = time.monotonic()
        built = build(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        auto_port = self.port is None
        if self.port is not None and _port_open(self.port):
            raise Neo4jServerError(
                f"cannot start Neo4j on 127.0.0.1:{self.port}: something already listens there "
                "(another Neo4j, e.g. `make neo4j`?); choose another port or none for a free one"
            )
        for attempt in range(3):
            if auto_port:
                self.port = free_port()
            try:
                self._launch(built, began)
            except Neo4jServerError as err:
                # Another process may take a free port between our probe and the JVM's bind.
                if auto_port and attempt < 2 and "Address already in use" in str(err):
                    continue
                raise
            break
        return self.bolt_uri

    def _launch(self, built: Neo4jBuild, began: float) -> None:
        assert self.port is not None
        archive = built.cds_archive
        cds: list[str] = []
        self._cds_dump = None
        if archive.exists():
            cds = [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
        else:
            self._cds_dump = archive.with_name(f"{archive.name}.{os.getpid()}.{self.port}.tmp")
            cds = [f"-XX:ArchiveClassesAtExit={self._cds_dump}", "-Xlog:cds=off"]
        self._cds_archive = archive
        cmd = [
            built.java,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            *JVM_FLAGS,
            *self.jvm_args,
            *cds,
            "-cp",
            built.classpath,
            MAIN_CLASS,
            str(self.data_dir),
            str(self.port),
            str(self.pagecache_mb),
            "--exit-on-stdin-eof",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - held open for the process's life
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        offset = log.tell()
        self._log = log
        launched = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # the launcher exits when this closes (we died)
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it
        )
        atexit.register(self.stop)
        deadline = launched + self.start_timeout
        ready = False
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._fail(f"the JVM exited with code {code} before it was ready", offset)
            if not ready:
                ready = READY in self._read_log(offset)
            if ready and _port_open(self.port):
                self.start_seconds = time.monotonic() - launched
                return
            time.sleep(0.05)
        self._fail(
            f"not ready after {self.start_timeout:.0f} s "
            f"(built and started in {time.monotonic() - began:.0f} s)",
            offset,
        )

    def _read_log(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _fail(self, reason: str, offset: int) -> None:
        tail = "\n".join(self._read_log(offset).splitlines()[-25:])
        self.stop(kill=True)
        raise Neo4jServerError(
            f"Neo4j {neo4j_version()} did not start on 127.0.0.1:{self.port}: {reason}.\n"
            f"Java: {shutil.which('java')} (OpenJDK 17 needed); jars built by Maven "
            f"({shutil.which('mvn')}) into {cache_root()}.\n"
            f"Log: {self.log_path} (Neo4j's own: {self.data_dir / 'logs' / 'debug.log'}). "
            f"Last lines:\n{tail}"
        )

    def wait(self) -> int:
        """Block until the server process exits; returns its exit code."""
        if self._proc is None:
            raise Neo4jServerError("the Neo4j server was never started")
        return self._proc.wait()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (a clean shutdown), then SIGKILL after ``stop_timeout``."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                if kill:
                    proc.kill()
                else:
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    kill = True
                    proc.kill()
                    proc.wait()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        dump, self._cds_dump = self._cds_dump, None
        if dump is not None and self._cds_archive is not None:
            # The JVM writes the archive as it exits; keep it only from a clean exit.
            if not kill and dump.exists() and dump.stat().st_size > 0:
                os.replace(dump, self._cds_archive)
            else:
                dump.unlink(missing_ok=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run a Neo4j server in the foreground until Ctrl-C or SIGTERM (``make neo4j``)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.services.neo4j",
        description="Run Neo4j (embedded Community, Bolt on 127.0.0.1, no auth) until stopped.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/neo4j"))
    parser.add_argument("--port", type=int, default=7687, help="Bolt port (0: any free port)")
    parser.add_argument("--heap-mb", type=int, default=768)
    parser.add_argument("--pagecache-mb", type=int, default=256)
    args = parser.parse_args(argv)
    server = Neo4jServer(
        args.data_dir,
        args.port or None,
        heap_mb=args.heap_mb,
        pagecache_mb=args.pagecache_mb,
    )

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even where a shell started us ignoring it
    try:
        uri = server.start()
        print(
            f"Neo4j {neo4j_version()} ready on {uri} (no auth) in {server.start_seconds:.1f} s\n"
            f"data: {server.data_dir}\nlog:  {server.log_path}\nCtrl-C stops it.",
            flush=True,
        )
        code = server.wait()
        print(f"Neo4j exited with code {code}; see {server.log_path}", file=sys.stderr)
        return 1
    except Neo4jServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        server.stop()
        print("Neo4j stopped.", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real TorchServe 0.12 serving a FraudSAGE archive, for tests and ``make torchserve-archive``.

::

    from tests.services.torchserve import TorchServeServer, archive

    mar = archive(Path("models/<version>"), tmp_path / "store")  # <version>.mar
    with TorchServeServer(tmp_path / "ts", mar.parent, {"fraud": mar.name}) as url:
        requests.post(f"{url}/predictions/fraud", json=payload)

or from the shell: ``python -m tests.services.torchserve archive --model models/<version>``
(what ``make torchserve-archive`` runs) and ``python -m tests.services.torchserve run --mar
var/model-store/<version>.mar`` (TorchServe in the foreground until Ctrl-C).

TorchServe is a Java frontend (``org.pytorch.serve.ModelServer``, run by the ``torchserve``
script on ``$JAVA_HOME/bin/java`` or the ``java`` on PATH; Java 17 here) that starts Python
workers with the interpreter that ran the script: the project's ``.venv``, where the ``gnn``
package is installed, so the archive holds only the handler, the weights and the manifest.

Each server is isolated in its own folder: free ports for inference, management and metrics,
a generated ``config.properties`` (token authorisation off, one worker per model), and
``TMPDIR`` / ``TEMP`` pointing inside it (TorchServe keeps its pid file and unpacks archives
in the temporary folder, so two servers never see each other's). Logs: ``console.log`` (the
frontend's and the workers' output) and ``logs/`` (``ts_log.log``, ``model_log.log``, ...);
every failure names them and quotes the last lines.

Errors: :class:`TorchServeError` when Java or TorchServe is missing, the archive cannot be
built, or the server or a model does not become ready. Nothing here skips.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from tests.services.ports import free_port

REPO: Final = Path(__file__).resolve().parents[2]
HANDLER: Final = REPO / "gnn" / "torchserve_handler.py"
JAVA_MAJOR: Final = 17
"""The Java TorchServe 0.12's frontend is built for."""

QUICK_VMARGS: Final = "-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
"""JVM flags for a short-lived server: a small heap, one GC thread, C1 compilation only."""


class TorchServeError(RuntimeError):
    """TorchServe could not be found, an archive built, or the server started."""


def _venv_tool(name: str, why: str) -> str:
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise TorchServeError(
            f"`{name}` is missing ({why}); install the pinned requirements into the virtual "
            "environment: `make setup` (torchserve and torch-model-archiver, requirements.txt)"
        )
    return found


def java() -> str:
    """The Java that TorchServe will use (``$JAVA_HOME/bin/java``, else ``java`` on PATH).

    Raises:
        TorchServeError: there is none, or it is older than Java 17.
    """
    home = os.environ.get("JAVA_HOME")
    path = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if path is None or not Path(path).is_file():
        where = f"$JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH"
        raise TorchServeError(
            f"TorchServe's frontend needs Java {JAVA_MAJOR}: {where}; install OpenJDK 17 "
            "(openjdk-17-jdk-headless, or `make java`)"
        )
    out = subprocess.run([path, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < JAVA_MAJOR:
        raise TorchServeError(
            f"TorchServe 0.12 needs Java {JAVA_MAJOR}+, but {path} is "
            f"{(out.stderr or out.stdout).strip().splitlines()[:1]}"
        )
    return path


def archive(model: Path, out_dir: Path, *, version: str = "1.0") -> Path:
    """Pack a model version folder into ``<out_dir>/<version folder name>.mar``.

    The archive holds :data:`HANDLER`, ``model.pt`` (the serialized file) and
    ``manifest.json``; the ``gnn`` package comes from the worker's Python.

    Args:
        model: a version folder (``model.pt`` and ``manifest.json``) or a registry (its
            ``LATEST``).
        out_dir: where the archive is written (created if missing; an older one is replaced).
        version: the TorchServe model version.
    """
    folder = Path(model)
    if (folder / "LATEST").is_file() and not (folder / "manifest.json").is_file():
        folder = folder / (folder / "LATEST").read_text().strip()
    for name in ("model.pt", "manifest.json"):
        if not (folder / name).is_file():
            raise TorchServeError(f"{folder} is not a model version folder: no {name}")
    tool = _venv_tool("torch-model-archiver", "it builds the .mar archive")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        tool,
        "--model-name",
        folder.resolve().name,
        "--version",
        version,
        "--handler",
        str(HANDLER),
        "--serialized-file",
        str(folder / "model.pt"),
        "--extra-files",
        str(folder / "manifest.json"),
        "--export-path",
        str(out_dir),
        "--force",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    mar = out_dir / f"{folder.resolve().name}.mar"
    if result.returncode != 0 or not mar.is_file():
        raise TorchServeError(
            f"torch-model-archiver failed ({result.returncode}): {' '.join(cmd)}\n"
            f"{(result.stdout + result.stderr).strip()[-3000:]}"
        )
    return mar


class TorchServeServer:
    """One TorchServe process tree (frontend and workers) in its own folder.

    Args:
        work_dir: the server's folder (created): ``config.properties``, ``console.log``,
            ``logs/``, ``tmp/``.
        model_store: the folder holding the archives.
        models: model name -> archive file name in ``model_store``, loaded at start.
        workers: workers per model.
        vmargs: JVM flags (default :data:`QUICK_VMARGS`).
        start_timeout: seconds to wait for ``/ping`` and every model's workers to be ready.
        stop_timeout: seconds to wait after SIGTERM before killing the process group.
        properties: more ``config.properties`` lines, e.g. ``{"max_request_size": "67108864"}``
            (TorchServe refuses a request body over 6,553,500 bytes by default).

    Used as a context manager, it yields the inference URL and stops the server on exit.
    """

    def __init__(
        self,
        work_dir: Path,
        model_store: Path,
        models: Mapping[str, str],
        *,
        workers: int = 1,
        vmargs: str = QUICK_VMARGS,
        start_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.model_store = Path(model_store).resolve()
        self.models = dict(models)
        self.workers = workers
        self.vmargs = vmargs
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.properties = dict(properties or {})
        self.ports: dict[str, int] = {}
        self.start_seconds: float | None = None
        """Seconds from launch to every model answering ready, once started."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def console_log(self) -> Path:
        """The frontend's and workers' stdout and stderr."""
        return self.work_dir / "console.log"

    @property
    def log_dir(self) -> Path:
        """TorchServe's own logs (``ts_log.log``, ``model_log.log``, ``access_log.log``)."""
        return self.work_dir / "logs"

    @property
    def inference_url(self) -> str:
        """``http://127.0.0.1:<port>``: ``/ping``, ``/predictions/<model>``."""
        return f"http://127.0.0.1:{self.ports['inference']}"

    @property
    def management_url(self) -> str:
        """``http://127.0.0.1:<port>``: ``/models``, ``/models/<model>``."""
        return f"http://127.0.0.1:{self.ports['management']}"

    @property
    def pid(self) -> int | None:
        """The ``torchserve`` process (its children: the Java frontend and the workers)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the ``torchserve`` process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self) -> Path:
        self.ports = {k: free_port() for k in ("inference", "management", "metrics")}
        lines = [
            f"inference_address=http://127.0.0.1:{self.ports['inference']}",
            f"management_address=http://127.0.0.1:{self.ports['management']}",
            f"metrics_address=http://127.0.0.1:{self.ports['metrics']}",
            f"default_workers_per_model={self.workers}",
            "disable_token_authorization=true",
            "enable_envvars_config=false",
            "install_py_dep_per_model=false",
            "number_of_netty_threads=2",
            "netty_client_threads=2",
            f"vmargs={self.vmargs}",
            *(f"{k}={v}" for k, v in self.properties.items()),
        ]
        path = self.work_dir / "config.properties"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> str:
        """Start TorchServe and wait until every model has a ready worker; the inference URL."""
        if self.running:
            return self.inference_url
        java_path = java()
        torchserve = _venv_tool("torchserve", "it starts the TorchServe frontend")
        for name, mar in self.models.items():
            if not (self.model_store / mar).is_file():
                raise TorchServeError(f"model {name}: no archive {self.model_store / mar}")
        (self.work_dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        cmd = [
            torchserve,
            "--start",
            "--foreground",
            "--ncs",
            "--disable-token-auth",
            "--model-store",
            str(self.model_store),
            "--ts-config",
            str(config),
            "--models",
            *(f"{name}={mar}" for name, mar in self.models.items()),
        ]
        env = dict(os.environ)
        tmp = str(self.work_dir / "tmp")
        env.update(
            JAVA_HOME=str(Path(java_path).resolve().parents[1]),
            TMPDIR=tmp,  # the pid file and unpacked archives: this server's own
            TEMP=tmp,  # java.io.tmpdir
            LOG_LOCATION=str(self.log_dir),
            METRICS_LOCATION=str(self.log_dir),
        )
        log = open(self.console_log, "ab")  # noqa: SIM115 - held open for the process's life
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        offset = log.tell()
        self._log = log
        launched = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            env=env,
            start_new_session=True,  # frontend and workers share a process group: stop kills all
        )
        atexit.register(self.stop)
        deadline = launched + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._fail(f"torchserve exited with code {code} before it was ready", offset)
            if self._ready():
                self.start_seconds = time.monotonic() - launched
                return self.inference_url
            time.sleep(0.2)
        self._fail(f"not ready after {self.start_timeout:.0f} s", offset)
        raise AssertionError("unreachable")

    def _ready(self) -> bool:
        ping = _get_json(f"{self.inference_url}/ping")
        if not isinstance(ping, dict) or ping.get("status") != "Healthy":
            return False
        for name in self.models:
            desc = _get_json(f"{self.management_url}/models/{name}")
            if not isinstance(desc, list) or not desc:
                return False
            workers = desc[0].get("workers", [])
            if not any(w.get("status") == "READY" for w in workers):
                return False
        return True

    def _fail(self, reason: str, offset: int) -> None:
        with open(self.console_log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        tail = "\n".join(text.splitlines()[-30:])
        self.stop(kill=True)
        raise TorchServeError(
            f"TorchServe did not start ({', '.join(f'{k}={v}' for k, v in self.models.items())}"
            f", store {self.model_store}): {reason}.\n"
            f"Logs: {self.console_log} and {self.log_dir}/ (ts_log.log, model_log.log). "
            f"Last lines:\n{tail}"
        )

    def wait(self) -> int:
        """Block until the ``torchserve`` process exits; its exit code."""
        if self._proc is None:
            raise TorchServeError("TorchServe was never started")
        return self._proc.wait()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``stop_timeout``."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            _signal_group(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # the frontend's workers may outlive it by a moment; the group goes with them
            _signal_group(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``archive`` (``make torchserve-archive``) or ``run`` TorchServe in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m tests.services.torchserve")
    sub = parser.add_subparsers(dest="command", required=True)
    arc = sub.add_parser("archive", help="pack a model version into <version>.mar")
    arc.add_argument("--model", type=Path, required=True, help="models/<version> (or models/)")
    arc.add_argument("--out", type=Path, default=Path("var/model-store"))
    run = sub.add_parser("run", help="serve an archive as model 'fraud' until Ctrl-C")
    run.add_argument("--mar", type=Path, required=True)
    run.add_argument("--work-dir", type=Path, default=Path("var/torchserve"))
    run.add_argument("--name", default="fraud")
    args = parser.parse_args(argv)
    try:
        if args.command == "archive":
            print(archive(args.model, args.out))
            return 0
        server = TorchServeServer(
            args.work_dir, args.mar.parent, {args.name: args.mar.name}, vmargs="-Xmx1g"
        )

        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        try:
            url = server.start()
            print(
                f"TorchServe ready in {server.start_seconds:.1f} s: "
                f"POST {url}/predictions/{args.name}\nmanagement: {server.management_url}\n"
                f"logs: {server.console_log}, {server.log_dir}/\nCtrl-C stops it.",
                flush=True,
            )
            code = server.wait()
            print(f"TorchServe exited with code {code}; see {server.console_log}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            server.stop()
            print("TorchServe stopped.", flush=True)
            return 0
    except TorchServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The Neo4j launcher's failure modes: each is an error that says what to fix, never a skip."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.services.neo4j import Neo4jServer, Neo4jServerError, build


def test_missing_java_names_the_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java, javac or mvn
    with pytest.raises(Neo4jServerError, match=r"`java`.*OpenJDK 17"):
        build(tmp_path / "cache")


def test_a_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(Neo4jServerError, match=rf"127\.0\.0\.1:{port}.*already listens"):
            Neo4jServer(tmp_path / "neo4j", port).start()


def test_a_jvm_that_fails_names_the_log(tmp_path: Path) -> None:
    server = Neo4jServer(tmp_path / "neo4j", heap_mb=1)  # the JVM refuses a 1 MB heap at once
    with pytest.raises(Neo4jServerError, match="exited with code") as info:
        server.start()
    message = str(info.value)
    assert str(server.log_path) in message
    assert "heap" in message  # the JVM's own words, from the log's last lines
    assert not server.running

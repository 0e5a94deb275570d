"""Fixtures shared by every test package: real servers, started once per session on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services.neo4j import QUICK_JVM_ARGS, Neo4jServer


@pytest.fixture(scope="session")
def neo4j_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Bolt URI of a real Neo4j 5.26 server (no auth), one JVM for the whole session.

    Started only when a test first asks for it (a few seconds; the first run on a machine also
    downloads the jars), stopped at the end of the session. If it cannot start, the tests that
    need it fail with the reason and the log's path: they never skip.

    ``RINGFENCE_TEST_NEO4J_URI`` points the tests at a server already running instead
    (``make neo4j``); tests clear its graph, so never point it at one holding real data.
    """
    external = os.environ.get("RINGFENCE_TEST_NEO4J_URI")
    if external:
        yield external
        return
    with Neo4jServer(tmp_path_factory.mktemp("neo4j"), jvm_args=QUICK_JVM_ARGS) as uri:
        yield uri

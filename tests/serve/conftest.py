"""Shared by the serve tests: a small trained model, and a real server in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
import uvicorn
from fastapi import FastAPI

from gnn import registry
from gnn.data import load_history
from gnn.train import TrainConfig, train
from ingest.generator import PROFILES, generate
from serve.api import server_app
from tests.services.ports import free_port


@pytest.fixture(scope="session")
def history_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The small profile's history (seed 8) and a model trained on it (quality irrelevant)."""
    data = tmp_path_factory.mktemp("api-data")
    generate(data, seed=8, start=date(2026, 10, 1), **PROFILES["small"])
    models = tmp_path_factory.mktemp("api-models")
    folder = train(data, models, seed=0, config=TrainConfig(epochs=2), baselines=False)
    return load_history(data), registry.load(folder)


@contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port, as ``ringfence serve`` does (the API's
    :func:`~serve.api.server_app`); yields its base URL."""
    port = free_port()
    served = server_app(app) if isinstance(app, FastAPI) else app
    srv = uvicorn.Server(uvicorn.Config(served, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)

"""Scores from TorchServe instead of the in-process model: :class:`TorchServeBackend`.

A :class:`serve.pipeline.ModelBackend` for the pipeline's ``backend=``. For each batch it builds
one subgraph holding every transaction of the batch as a target
(:meth:`gnn.online.HistoryGraph.subgraph` over the pipeline's history: each target gets its own
entity nodes, as of its own time, and past transactions shared between targets are sent once),
posts it as a :mod:`gnn.serving_payload` to TorchServe's inference API
(``POST <url>/predictions/<model>``) over a kept-alive HTTP connection, and returns the scores
in row order, matched by ``txn_id``. TorchServe runs the message-passing path
(:meth:`gnn.model.FraudSAGE.forward`), which computes the same function as the in-process
``forward_dense`` (equal to 1e-5, ``tests/serve/test_model_backend.py``).

One subgraph for the batch rather than one per transaction merged into one request: the scores
are the same (each target reads only its own entity nodes), and past transactions that several
targets share are in the body once instead of once per target.

A body larger than ``max_request_bytes`` (TorchServe refuses bodies over its
``max_request_size``, 6,553,500 bytes by default) is split: the batch's transactions go in
several requests, each under the limit.

The version check: the handler names the model version it serves in every answer
(:data:`gnn.torchserve_handler.VERSION_HEADER`); the backend asks once when it is built (a
one-transaction probe) and checks every answer after, and refuses scores from any version but
the pipeline's manifest's. Every failure is a :class:`ModelBackendError` naming the URL and
the reason.
"""

from __future__ import annotations

import http.client
import math
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import torch

from gnn.features import TXN_FEATURES, TxnRow
from gnn.online import HistoryGraph
from gnn.serving_payload import FORMAT, to_payload
from gnn.torchserve_handler import VERSION_HEADER
from ingest.errors import RingfenceError

DEFAULT_MAX_REQUEST_BYTES: Final = 6_553_500
"""TorchServe's default ``max_request_size``."""

_PROBE_ID: Final = "ringfence-version-probe"
_BODY_QUOTED: Final = 500
"""Characters of an error answer's body quoted in the error."""


class ModelBackendError(RingfenceError, RuntimeError):
    """The model server could not score a batch: unreachable, an error answer, a wrong model."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(slots=True)
class BackendStats:
    """Counters since the backend was built (the version probe included)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    split_batches: int = 0
    reconnects: int = 0


class TorchServeBackend:
    """Scores a pipeline's batches with the FraudSAGE archive a TorchServe serves.

    Args:
        url: TorchServe's inference base URL (``http://host:8080``; a path prefix is kept).
        model_name: the name the archive is registered under (``/predictions/<model_name>``).
        history: the pipeline's :attr:`~serve.pipeline.ScoringPipeline.history` (``None`` when
            the pipeline keeps none: refused, the subgraphs are built from it).
        timeout_s: seconds to wait to connect and for each read of an answer.
        expected_version: the model version the pipeline's manifest names; answers from any
            other are refused.
        max_request_bytes: the largest body sent in one request (TorchServe's
            ``max_request_size``); a larger batch is split.
        check: probe TorchServe now (reachable, serving ``expected_version``); otherwise the
            first batch's answer is the first check.

    Raises:
        ModelBackendError: no history, a bad URL, or (with ``check``) TorchServe unreachable
            or serving another version.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        history: HistoryGraph | None,
        *,
        timeout_s: float = 10.0,
        expected_version: str,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        check: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.model_name = model_name
        quoted = urllib.parse.quote(model_name, safe="")
        self.endpoint = f"{self.url}/predictions/{quoted}"
        if history is None:
            raise ModelBackendError(
                f"the TorchServe backend ({self.endpoint}) builds each transaction's subgraph "
                "from the pipeline's history, and this pipeline keeps none: build it with "
                "keep_history=True"
            )
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelBackendError(
                f"TorchServe URL {url!r} is not an http(s)://host[:port] inference address"
            )
        if timeout_s <= 0 or max_request_bytes <= 0:
            raise ModelBackendError(
                f"TorchServe at {self.url}: timeout_s and max_request_bytes must be positive"
            )
        self.history = history
        self.timeout_s = float(timeout_s)
        self.expected_version = str(expected_version)
        self.max_request_bytes = int(max_request_bytes)
        self.stats = BackendStats()
        self.served_version: str | None = None
        """The version TorchServe last named (``None`` before the first answer)."""
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = f"{parts.path.rstrip('/')}/predictions/{quoted}"
        self._idle: list[http.client.HTTPConnection] = []
        self._pool_lock = threading.Lock()
        if check:
            self.check()

    @classmethod
    def for_pipeline(
        cls, pipeline: Any, url: str, model_name: str, **kwargs: Any
    ) -> TorchServeBackend:
        """A backend on ``pipeline``'s history, expecting its manifest's version."""
        return cls(
            url,
            model_name,
            pipeline.history,
            expected_version=pipeline.version,
            **kwargs,
        )

    # -- the ModelBackend protocol ---------------------------------------------------------

    def score(self, rows: Sequence[TxnRow], inputs: tuple[torch.Tensor, ...] = ()) -> list[float]:
        """The fraud probability of each row (rows already in the history), in row order.

        ``inputs`` (the in-process model's dense inputs) are not used: TorchServe gets the
        rows' subgraph.
        """
        if not rows:
            return []
        positions: list[int] = []
        for row in rows:
            p = self.history.position.get(row.txn_id)
            if p is None:
                raise ModelBackendError(
                    f"TorchServe backend ({self.endpoint}): transaction {row.txn_id} is not in "
                    "the pipeline's history (the backend must be built on the pipeline's own "
                    "history)"
                )
            positions.append(p)
        return self._score(list(rows), positions)

    def check(self) -> str:
        """Probe TorchServe with a one-transaction subgraph; the version it serves.

        Raises:
            ModelBackendError: unreachable, an error answer, or another model version.
        """
        probe = {
            "format": FORMAT,
            "nodes": {"txn": {"x": [[0.0] * len(TXN_FEATURES)], "txn_id": [_PROBE_ID]}},
            "edges": [],
            "target": [0],
        }
        answer = self._request(orjson.dumps(probe))
        self._match([_PROBE_ID], answer)
        assert self.served_version is not None
        return self.served_version

    def close(self) -> None:
        """Close the kept-alive connections (a later call opens a new one)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- internals -------------------------------------------------------------------------

    def _score(self, rows: list[TxnRow], positions: list[int]) -> list[float]:
        payload = to_payload(self.history.subgraph(positions))
        body = orjson.dumps(payload)
        if len(body) > self.max_request_bytes:
            if len(rows) == 1:
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: the subgraph of {rows[0].txn_id} takes "
                    f"{len(body):,} bytes, over the {self.max_request_bytes:,} allowed in one "
                    "request; raise TorchServe's max_request_size and the backend's "
                    "max_request_bytes (RINGFENCE_TORCHSERVE_MAX_REQUEST_BYTES)"
                )
            self.stats.split_batches += 1
            parts = min(len(rows), max(2, math.ceil(len(body) / self.max_request_bytes)))
            size = math.ceil(len(rows) / parts)
            out: list[float] = []
            for k in range(0, len(rows), size):
                out += self._score(rows[k : k + size], positions[k : k + size])
            return out
        return self._match([r.txn_id for r in rows], self._request(body))

    def _match(self, txn_ids: list[str], answer: Any) -> list[float]:
        """The answer's scores in ``txn_ids`` order."""
        if not isinstance(answer, list):
            raise ModelBackendError(
                f"TorchServe at {self.endpoint} answered {type(answer).__name__}, not a list of "
                "{txn_id, score}"
            )
        by_id: dict[str, Any] = {}
        for item in answer:
            if isinstance(item, dict) and "txn_id" in item:
                by_id[str(item["txn_id"])] = item.get("score")
        out: list[float] = []
        for txn_id in txn_ids:
            score = by_id.get(txn_id)
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: no score for {txn_id} in its answer "
                    f"({len(answer)} scores for {len(txn_ids)} transactions)"
                )
            if not 0.0 <= score <= 1.0:
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: score {score!r} for {txn_id} is not a "
                    "probability"
                )
            out.append(float(score))
        return out

    def _request(self, body: bytes) -> Any:
        """POST ``body``; the parsed JSON answer of a 200 from the expected model version."""
        status, version, data = self._post(body)
        self.stats.requests += 1
        self.stats.bytes_sent += len(body)
        self.stats.bytes_received += len(data)
        if status != 200:
            text = data.decode("utf-8", errors="replace")
            quoted = " ".join(text.split())[:_BODY_QUOTED]
            raise ModelBackendError(
                f"TorchServe at {self.endpoint} answered HTTP {status}: {quoted}",
                retryable=status >= 500 or status == 429,
            )
        if version is None:
            raise ModelBackendError(
                f"TorchServe at {self.endpoint} does not name its model version (no "
                f"{VERSION_HEADER} header): the archive was built with an older handler; "
                "rebuild it (make torchserve-archive)"
            )
        self.served_version = version
        if version != self.expected_version:
            raise ModelBackendError(
                f"TorchServe at {self.endpoint} serves model version {version}, but the "
                f"pipeline's model is {self.expected_version}: archive and register the same "
                "version"
            )
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise ModelBackendError(
                f"TorchServe at {self.endpoint} answered something that is not JSON ({err})"
            ) from None

    def _post(self, body: bytes) -> tuple[int, str | None, bytes]:
        """One POST on a pooled connection: status, version header, body.

        A kept-alive connection the server has closed in the meantime fails on first use; the
        request is then sent once more on a new connection (scoring changes nothing there).
        """
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        while True:
            conn, reused = self._take()
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except ConnectionRefusedError:
                conn.close()
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: connection refused (is it running, and "
                    "is this its inference address?)",
                    retryable=True,
                ) from None
            except TimeoutError:
                conn.close()
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: no answer within {self.timeout_s:g} s",
                    retryable=True,
                ) from None
            except (http.client.HTTPException, OSError) as err:
                conn.close()
                if reused:
                    self.stats.reconnects += 1
                    continue
                raise ModelBackendError(
                    f"TorchServe at {self.endpoint}: {type(err).__name__}: {err}",
                    retryable=True,
                ) from None
            if resp.will_close:
                conn.close()
            else:
                self._give(conn)
            return resp.status, resp.getheader(VERSION_HEADER), data

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop(), True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s), False  # type: ignore[arg-type]

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._pool_lock:
            self._idle.append(conn)

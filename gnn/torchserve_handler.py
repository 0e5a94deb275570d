"""The TorchServe handler: FraudSAGE's message-passing path over posted subgraphs.

``make torchserve-archive MODEL=models/<version>`` packs this file (as the handler), the
version's ``model.pt`` (as the serialized file) and ``manifest.json`` (as an extra file) into
``<version>.mar``. TorchServe unpacks it into a model folder and imports this file there; the
``gnn`` package comes from the Python that started TorchServe (the project's ``.venv``, where
``make setup`` installs the project), so the handler runs the very code the in-process scorer
runs. ``docs/torchserve.md`` describes the request and the response.

A request body is one subgraph payload (:mod:`gnn.serving_payload`) or a list of them; the
response is a JSON list of ``{"txn_id", "score"}``, one per target, in target order (for a list
of payloads: the targets of every payload, in order). TorchServe may hand the handler several
requests at once (``batchSize``): they are merged into one graph and scored in one forward
pass; a malformed request gets a 400 with its reason, the others their scores. Every answer
carries the archived model's version (the manifest's ``version``) in the
:data:`VERSION_HEADER` response header, so a client can refuse scores from another model.

The file defines exactly one class, as TorchServe requires of a custom handler module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch

from gnn import registry
from gnn.model import TXN, FraudSAGE
from gnn.serving_payload import PayloadError, from_payload, merge

log = logging.getLogger(__name__)

VERSION_HEADER: Final = "X-Ringfence-Model-Version"
"""The response header naming the model version that computed the scores."""


class FraudSAGEHandler:
    """Scores the target transactions of posted subgraphs with the archived model.

    Attributes:
        model: the model, in eval mode (set by :meth:`initialize`).
        manifest: the version's manifest (thresholds, metrics, training data).
    """

    def __init__(self) -> None:
        self.model: FraudSAGE | None = None
        self.manifest: dict[str, Any] = {}
        self.initialized = False
        self._errors: dict[int, str] = {}

    def initialize(self, context: Any) -> None:
        """Load ``model.pt`` and ``manifest.json`` from the unpacked archive's folder.

        The worker keeps one intra-op thread: requests are small subgraphs, and on a busy
        machine with few cores more threads make each small operation wait for a descheduled
        peer (see :func:`gnn.model.intra_op_threads`).
        """
        torch.set_num_threads(1)
        model_dir = Path(context.system_properties["model_dir"])
        self.model, self.manifest = registry.load(model_dir)
        self.initialized = True
        log.info(
            "FraudSAGE %s loaded from %s (hidden=%s)",
            self.manifest.get("version"),
            model_dir,
            self.model.hidden,
        )

    # -- the TorchServe steps --------------------------------------------------------------

    def preprocess(self, requests: list[Any]) -> list[list[Any] | None]:
        """Per request, its subgraphs (``None`` where the request is malformed)."""
        self._errors = {}
        out: list[list[Any] | None] = []
        for i, request in enumerate(requests):
            try:
                body = _body(request)
                payloads = body if isinstance(body, list) else [body]
                if not payloads:
                    raise PayloadError("an empty list of payloads")
                out.append([from_payload(p) for p in payloads])
            except PayloadError as err:
                self._errors[i] = str(err)
                out.append(None)
        return out

    def inference(self, graphs: list[list[Any] | None]) -> list[list[dict[str, Any]] | None]:
        """One forward pass over every request's subgraphs; per request, its targets' scores."""
        assert self.model is not None, "initialize() first"
        flat = [g for gs in graphs if gs is not None for g in gs]
        if not flat:
            return [None] * len(graphs)
        data, _ = merge(flat)
        with torch.inference_mode():
            scores = torch.sigmoid(self.model(data)).tolist()
        ids = data[TXN].txn_id
        named = [
            {"txn_id": ids[t], "score": s}
            for t, s in zip(data[TXN].target.tolist(), scores, strict=True)
        ]
        out: list[list[dict[str, Any]] | None] = []
        at = 0
        for gs in graphs:
            if gs is None:
                out.append(None)
                continue
            n = sum(int(g[TXN].target.numel()) for g in gs)
            out.append(named[at : at + n])
            at += n
        return out

    def postprocess(
        self, results: list[list[dict[str, Any]] | None], context: Any = None
    ) -> list[Any]:
        """One JSON-ready answer per request; a malformed request's is ``{"error": ...}``.

        Each answer's :data:`VERSION_HEADER` names the model version (with a ``context``).
        """
        out: list[Any] = []
        version = str(self.manifest.get("version", ""))
        for i, result in enumerate(results):
            if context is not None:
                context.set_response_header(i, VERSION_HEADER, version)
            if result is None:
                if context is not None:
                    context.set_response_status(400, "Bad Request", idx=i)
                out.append({"error": self._errors.get(i, "malformed request")})
            else:
                out.append(result)
        return out

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        """TorchServe's entry point: a batch of requests in, one answer per request out."""
        if not self.initialized:
            self.initialize(context)
        return self.postprocess(self.inference(self.preprocess(data)), context)


def _body(request: Any) -> Any:
    """The JSON body of one TorchServe request (already parsed when sent as JSON)."""
    body = (request.get("data") or request.get("body")) if isinstance(request, Mapping) else request
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise PayloadError(f"the body is not JSON: {err}") from None
    if body is None:
        raise PayloadError("the request has no body")
    return body

"""The scoring API over real HTTP: a uvicorn server in a thread, urllib as the gateway."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from ingest.events import encode_event
from serve.api import MAX_BODY_BYTES, create_app
from serve.feature_worker import FeatureWorker
from serve.pipeline import ScoringPipeline
from serve.tokens import SigningKeys, issue
from tests.serve.conftest import running

KEYS = SigningKeys.parse("k1=" + "q" * 40)


@pytest.fixture(
    scope="module",
    params=[(True, False), (False, False), (True, True)],
    ids=["fast_path", "fastapi_routes", "feature_worker"],
)
def server(history_and_model: tuple, request) -> Iterator[tuple[str, ScoringPipeline]]:
    """The API: scoring routes answered by the fast path, by FastAPI's routes, and with the
    feature state in a worker process."""
    _, (model, manifest) = history_and_model
    fast_path, in_worker = request.param
    worker = FeatureWorker() if in_worker else None
    pipeline = ScoringPipeline(model, manifest, feature_worker=worker)
    try:
        with running(create_app(pipeline, KEYS, fast_path=fast_path)) as url:
            yield url, pipeline
    finally:
        if worker is not None:
            worker.close()


def token(scopes: list[str]) -> str:
    return issue(KEYS, client="gw_test", scopes=scopes, ttl_s=600, now=datetime.now(UTC))


def call(
    url: str, path: str, body: object = None, auth: str | None = None, method: str | None = None
) -> tuple[int, dict]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    verb = method or ("POST" if data else "GET")
    req = urllib.request.Request(url + path, data=data, method=verb)
    req.add_header("content-type", "application/json")
    if auth:
        req.add_header("authorization", f"Bearer {auth}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw[:1] in (b"{", b"[") else {"text": raw}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def transactions(history_and_model: tuple) -> list[dict]:
    history, _ = history_and_model
    return [json.loads(encode_event(e)) for e in history.events if e.event_type == "transaction"]


def test_scoring_needs_a_token_with_the_score_scope(server: tuple, history_and_model) -> None:
    url, _ = server
    txn = transactions(history_and_model)[0]
    status, body = call(url, "/v1/score", txn)
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    status, body = call(url, "/v1/score", txn, auth="garbage")
    assert status == 401
    status, body = call(url, "/v1/score", txn, auth=token(["explain"]))
    assert status == 403
    assert "score" in body["error"]["message"]


def test_a_transaction_is_scored_once_and_a_retry_gets_the_same_answer(
    server: tuple, history_and_model: tuple
) -> None:
    url, pipeline = server
    auth = token(["score"])
    txns = transactions(history_and_model)
    status, first = call(url, "/v1/score", txns[1], auth=auth)
    assert status == 200
    assert first["txn_id"] == txns[1]["txn_id"]
    assert first["decision"] in ("approve", "review", "block")
    assert 0 <= first["score"] <= 1
    assert first["model_version"] == pipeline.version
    assert first["latency_ms"] > 0
    seen = pipeline.stats.transactions
    status, again = call(url, "/v1/score", txns[1], auth=auth)
    assert status == 200
    assert again["replayed"] is True
    assert again["score"] == first["score"]
    assert pipeline.stats.transactions == seen  # the state did not move


def test_bad_input_names_the_field_and_changes_nothing(
    server: tuple, history_and_model: tuple
) -> None:
    url, pipeline = server
    auth = token(["score"])
    txns = transactions(history_and_model)
    bad = dict(txns[2], amount="-5", currency="XXX")
    events_before = pipeline.stats.events
    status, body = call(url, "/v1/score", bad, auth=auth)
    assert status == 422
    fields = {f["field"] for f in body["error"]["fields"]}
    assert {"amount", "currency"} <= fields
    status, body = call(url, "/v1/score", b"{not json", auth=auth)
    assert status == 422
    # a batch is all or nothing
    batch = {"transactions": [txns[3], bad, txns[4]]}
    status, body = call(url, "/v1/score/batch", batch, auth=auth)
    assert status == 422
    assert {f["index"] for f in body["error"]["fields"]} == {1}
    assert pipeline.stats.events == events_before
    status, body = call(url, "/v1/score/batch", {"transactions": [txns[3], txns[4]]}, auth=auth)
    assert status == 200
    assert [r["txn_id"] for r in body["results"]] == [txns[3]["txn_id"], txns[4]["txn_id"]]
    assert not any(r["replayed"] for r in body["results"])
    # an oversized body is refused from its declared length, before it is read
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/v1/score/batch")
    conn.putheader("authorization", f"Bearer {auth}")
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"]["code"] == "too_large"
    conn.close()


def test_health_readiness_and_metrics(server: tuple) -> None:
    url, pipeline = server
    assert call(url, "/health") == (200, {"status": "ok"})
    status, body = call(url, "/ready")
    assert status == 200
    assert body["model_version"] == pipeline.version
    status, body = call(url, "/metrics")
    assert status == 200
    assert b"ringfence_request_seconds" in body["text"]


def test_the_api_decides_like_the_offline_scorer(history_and_model: tuple) -> None:
    from gnn.scoring import Scorer

    history, (model, manifest) = history_and_model
    pipeline = ScoringPipeline(model, manifest)
    events = history.events
    got = []
    for k in range(0, len(events), 97):  # uneven micro-batches
        got += pipeline.process(events[k : k + 97])
    offline = list(Scorer.from_manifest(model, manifest).score_events(events))
    assert [d.txn_id for d in got] == [s.txn_id for s in offline]
    assert max(abs(d.score - s.score) for d, s in zip(got, offline, strict=True)) < 1e-6
    # decisions agree, except where a score sits within float noise of a threshold (the
    # thresholds are validation scores, so one of these rows may sit exactly on one)
    cut = (pipeline.block, pipeline.review)
    for d, s in zip(got, offline, strict=True):
        if min(abs(d.score - c) for c in cut) > 1e-6:
            assert d.decision == s.decision
    flagged = [d for d in got if d.decision != "approve"]
    assert flagged
    assert all(d.reasons for d in flagged)


def test_rules_decide_beside_the_model_and_never_break_a_request(
    history_and_model: tuple,
) -> None:
    from rules import ruleset_from_yaml

    history, (model, manifest) = history_and_model
    rules = ruleset_from_yaml(
        """
version: "7"
rules:
  - id: big_transfer
    description: large transfers are reviewed
    when: txn.channel == "transfer" and txn.amount > 500
    action: review
    priority: 10
  - id: listed_merchant
    description: merchants on the watch list are blocked
    when: list("watch_merchants").contains(txn.merchant_id)
    action: block
    priority: 20
  - id: broken
    description: reads a field transactions do not have
    when: txn.no_such_field > 1
    action: block
"""
    )
    txns = [e for e in history.events if e.event_type == "transaction"]
    watched = next(t.merchant_id for t in txns if t.merchant_id)
    pipeline = ScoringPipeline(model, manifest, ruleset=rules, lists={"watch_merchants": {watched}})
    decisions = pipeline.process(history.events)
    by_id = {d.txn_id: d for d in decisions}
    for t in txns:
        d = by_id[t.txn_id]
        assert d.ruleset_version == "7"
        assert any(o.rule_id == "broken" and o.result == "error" for o in d.rule_outcomes)
        if t.merchant_id == watched:
            assert (d.decision, d.decided_by) == ("block", "rule:listed_merchant")
        elif t.channel == "transfer" and float(t.amount) > 500 and d.decided_by.startswith("rule"):
            assert d.decision in ("review", "block")
    assert any(d.decided_by == "rule:big_transfer" for d in decisions)
    body = by_id[txns[0].txn_id].to_dict()
    assert body["ruleset_version"] == "7"
    assert {r["rule_id"] for r in body["rules"]} >= {"broken"}


def test_a_scored_transaction_is_explained_on_demand(
    server: tuple, history_and_model: tuple
) -> None:
    url, pipeline = server
    txns = transactions(history_and_model)
    status, scored = call(url, "/v1/score", txns[5], auth=token(["score"]))
    assert status == 200
    path = f"/v1/transactions/{txns[5]['txn_id']}/explanation"
    status, _ = call(url, path, auth=token(["score"]))
    assert status == 403
    status, body = call(url, path, auth=token(["explain"]))
    assert status == 200
    assert body["txn_id"] == txns[5]["txn_id"]
    assert abs(body["score"] - scored["score"]) < 1e-5
    assert body["features"]
    assert body["decision"] == scored["decision"]
    assert body["model_version"] == pipeline.version
    status, _ = call(url, "/v1/transactions/nope/explanation", auth=token(["explain"]))
    assert status == 404


@pytest.mark.parametrize("in_worker", [False, True], ids=["in_process", "feature_worker"])
def test_concurrent_calls_are_scored_together_each_getting_its_own_answer(
    history_and_model: tuple, in_worker: bool
) -> None:
    _, (model, manifest) = history_and_model
    txns = transactions(history_and_model)[:300]

    class Busy(ScoringPipeline):
        """A pipeline whose every call takes at least 20 ms, as a heavy batch would."""

        def begin(self, events):  # type: ignore[no-untyped-def]
            time.sleep(0.02)
            return super().begin(events)

    worker = FeatureWorker() if in_worker else None
    pipeline = Busy(model, manifest, feature_worker=worker)
    app = create_app(pipeline, KEYS)
    auth = token(["score"])
    with running(app) as url:
        host = url.removeprefix("http://")

        def gateway(chunk: list[dict]) -> list[tuple[int, dict]]:
            """A gateway on one keep-alive connection, calling for each of its transactions."""
            conn = http.client.HTTPConnection(host, timeout=30)
            out = []
            try:
                for t in chunk:
                    conn.request(
                        "POST",
                        "/v1/score",
                        json.dumps(t),
                        {"content-type": "application/json", "authorization": f"Bearer {auth}"},
                    )
                    resp = conn.getresponse()
                    out.append((resp.status, json.loads(resp.read())))
            finally:
                conn.close()
            return out

        with ThreadPoolExecutor(30) as pool:  # 30 gateways at once, 10 calls each
            chunks = [txns[k::30] for k in range(30)]
            by_gateway = list(pool.map(gateway, chunks))
        answers = [a for got in by_gateway for a in got]
        txns = [t for chunk in chunks for t in chunk]
        batcher = app.state.scoring.batcher
        batches, largest = batcher.batches, batcher.largest
        retried = [call(url, "/v1/score", t, auth) for t in txns]
        _, metrics = call(url, "/metrics")
    assert [status for status, _ in answers] == [200] * len(txns)
    assert [a["txn_id"] for _, a in answers] == [t["txn_id"] for t in txns]
    assert largest > 1, "concurrent calls were never scored together"
    assert batches < len(txns)
    assert pipeline.stats.transactions == len(txns)
    # each answer was its own transaction's decision: a retry gives back exactly that answer
    for (_, first), (status, again) in zip(answers, retried, strict=True):
        assert status == 200
        assert again["replayed"] is True
        assert (again["txn_id"], again["score"], again["decision"]) == (
            first["txn_id"],
            first["score"],
            first["decision"],
        )
    assert "ringfence_microbatch_transactions_bucket" in metrics["text"].decode()
    if worker is not None:
        worker.close()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi_routes"])
def test_a_lost_feature_worker_fails_calls_health_and_readiness_without_hanging(
    history_and_model: tuple, fast_path: bool
) -> None:
    _, (model, manifest) = history_and_model
    txns = transactions(history_and_model)[:20]
    worker = FeatureWorker()
    pipeline = ScoringPipeline(model, manifest, feature_worker=worker)
    auth = token(["score"])
    try:
        with running(create_app(pipeline, KEYS, fast_path=fast_path)) as url:
            assert call(url, "/v1/score", txns[0], auth)[0] == 200
            assert call(url, "/ready")[0] == 200
            worker._proc.kill()
            worker._proc.join(5)
            status, body = call(url, "/v1/score", txns[1], auth)
            assert status == 503
            assert body["error"]["code"] == "unavailable"
            assert "feature process is gone" in body["error"]["message"]
            status, body = call(url, "/v1/score/batch", {"transactions": txns[2:5]}, auth)
            assert status == 503
            for path in ("/health", "/ready"):
                status, body = call(url, path)
                assert status == 503
                assert "feature worker" in body["reason"]
    finally:
        worker.close()

"""Gateways under load for the scoring API: single transactions and batches, from a prepared file.

Two user classes, chosen on the command line by name:

* ``SingleGateway`` posts one transaction per call to ``POST /v1/score``;
* ``BatchGateway`` posts ``RINGFENCE_BATCH`` transactions per call (default 250, at most 1,000)
  to ``POST /v1/score/batch``.

Every user takes the next transactions from one shared cursor over the file, so the service
sees each transaction once and (nearly) in time order: the pipeline is idempotent by
``txn_id``, and a repeat would only measure a cheap replay. When the file runs out, users stop
and ``transactions exhausted`` is printed to stderr; the run is then shorter than asked.

Settings, from the environment:

* ``RINGFENCE_LOAD_FILE``: the transactions, one canonical JSON transaction a line, in time
  order (``perf/http_bench.py`` writes it from a data folder);
* ``RINGFENCE_TOKEN``: a bearer token with the ``score`` scope;
* ``RINGFENCE_USER_RATE``: calls per second per user (a constant-throughput wait: the user
  rests after each call until its next slot, and falls behind only when a call takes longer
  than its slot); 0 or unset: no wait, each user calls again as soon as it has its answer;
* ``RINGFENCE_BATCH``: transactions per batch call.

For example, 1,000 calls/s from 100 users::

    RINGFENCE_LOAD_FILE=txns.jsonl RINGFENCE_TOKEN=... RINGFENCE_USER_RATE=10 \\
        locust -f perf/locustfile.py SingleGateway --headless -u 100 -r 100 -t 60s \\
        --host http://127.0.0.1:8080 --csv out/single
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from locust import FastHttpUser, constant, constant_throughput, task
from locust.exception import StopUser

_FILE = os.environ.get("RINGFENCE_LOAD_FILE", "")
_TOKEN = os.environ.get("RINGFENCE_TOKEN", "")
_RATE = float(os.environ.get("RINGFENCE_USER_RATE", "0") or 0)
_BATCH = max(1, min(1000, int(os.environ.get("RINGFENCE_BATCH", "250") or 250)))


def _load(path: str) -> list[bytes]:
    if not path:
        return []
    return [line for line in Path(path).read_bytes().splitlines() if line.strip()]


TRANSACTIONS = _load(_FILE)
_cursor = 0
_exhausted = False


def take(n: int) -> list[bytes]:
    """The next ``n`` transactions of the file (fewer at its end, none after it)."""
    global _cursor, _exhausted
    start = _cursor
    _cursor = min(len(TRANSACTIONS), start + n)
    if start >= len(TRANSACTIONS) and not _exhausted:
        _exhausted = True
        print(f"transactions exhausted: all {len(TRANSACTIONS):,} were sent", file=sys.stderr)
    return TRANSACTIONS[start:_cursor]


_HEADERS = {"Authorization": f"Bearer {_TOKEN}", "Content-Type": "application/json"}


class SingleGateway(FastHttpUser):
    """A gateway scoring each transaction as it authorises it."""

    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    @task
    def score(self) -> None:
        batch = take(1)
        if not batch:
            raise StopUser
        self.client.post("/v1/score", data=batch[0], headers=_HEADERS, name="/v1/score")


class BatchGateway(FastHttpUser):
    """A gateway sending its transactions in batches."""

    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    @task
    def score_batch(self) -> None:
        batch = take(_BATCH)
        if not batch:
            raise StopUser
        body = b'{"transactions":[' + b",".join(batch) + b"]}"
        # one name per batch size, so the CSV says what was sent
        self.client.post(
            "/v1/score/batch", data=body, headers=_HEADERS, name=f"/v1/score/batch[{_BATCH}]"
        )

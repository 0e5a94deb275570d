"""Throughput of the embedded bus: append and poll records per second.

Appends ``--records`` records of ``--size`` bytes (each with an account key) in batches of
``--batch``, with fsync on and then off, and polls them all back through a consumer group, once
with ``poll(1000)`` (the default) and once with ``poll(--batch)``. Run from the repository root::

    python perf/bus_bench.py
    python perf/bus_bench.py --records 200000 --dir /mnt/disk/tmp

The bus lives in a temporary folder under ``--dir`` (default: the system's), removed afterwards.
With fsync on, every batch waits for ``fdatasync``, so that figure depends on the disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.bus import EmbeddedBus


def append_rate(root: str, records: int, size: int, batch: int, fsync: bool) -> float:
    """Append ``records`` records in batches; return records per second."""
    noise = os.urandom(size + 64)
    payloads = [noise[i % 64 : i % 64 + size] for i in range(batch)]
    keys = [f"acct-{i % 9973:05d}" for i in range(batch)]
    with EmbeddedBus(root, fsync=fsync) as bus:
        started = time.perf_counter()
        done = 0
        while done < records:
            n = min(batch, records - done)
            bus.append("bench", payloads[:n], keys[:n])
            done += n
        return records / (time.perf_counter() - started)


def poll_rate(root: str, records: int, max_records: int) -> float:
    """Poll the whole topic with a fresh group; return records per second."""
    with EmbeddedBus(root) as bus, bus.consumer("bench", f"poll-{max_records}") as consumer:
        started = time.perf_counter()
        got = 0
        while polled := consumer.poll(max_records):
            got += len(polled)
        elapsed = time.perf_counter() - started
        consumer.commit()
        if got != records or consumer.lag != 0:
            raise SystemExit(f"polled {got} of {records} records, lag {consumer.lag}")
    return records / elapsed


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run with fsync on and off, print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=400, help="payload bytes")
    parser.add_argument("--batch", type=int, default=10_000, help="records per append")
    parser.add_argument("--dir", default=None, help="parent folder of the bus")
    args = parser.parse_args(argv)
    print(
        f"embedded bus: {args.records:,} records of {args.size} B + 10 B key, "
        f"appended in batches of {args.batch:,}; python {sys.version.split()[0]}"
    )
    for fsync in (True, False):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="bus_bench_") as root:
            append = append_rate(root, args.records, args.size, args.batch, fsync)
            mib = sum(p.stat().st_size for p in Path(root, "bench").glob("*.log")) / 2**20
            polls = {n: poll_rate(root, args.records, n) for n in sorted({1000, args.batch})}
        print(
            f"fsync {'on ' if fsync else 'off'}: append {append:>10,.0f} records/s "
            f"({append * mib / args.records:,.0f} MiB/s); "
            + "; ".join(f"poll({n}) {rate:>10,.0f} records/s" for n, rate in polls.items())
        )


if __name__ == "__main__":
    main()

"""Throughput of the embedded bus: append and poll records per second.

Appends ``--records`` records of about ``--size`` bytes (each with an account key) in batches of
``--batch``, once with fsync on and once with it off, then polls them all back through a
consumer group. Run from the repository root::

    python perf/bus_bench.py
    python perf/bus_bench.py --records 200000 --dir /mnt/disk/tmp

The folder (a temporary one under ``--dir``) is removed afterwards. Figures depend on the disk:
with fsync on, each batch waits for ``fdatasync``.
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


def run(
    records: int, size: int, batch: int, directory: str | None, fsync: bool
) -> dict[str, float]:
    """Append then poll ``records`` records; return the rates measured."""
    rng = os.urandom(size + 64)
    payloads = [rng[i % 64 : i % 64 + size] for i in range(batch)]
    keys = [f"acct-{i % 9973:05d}" for i in range(batch)]
    with tempfile.TemporaryDirectory(dir=directory, prefix="bus_bench_") as root:
        with EmbeddedBus(root, fsync=fsync) as bus:
            started = time.perf_counter()
            done = 0
            while done < records:
                n = min(batch, records - done)
                bus.append("bench", payloads[:n], keys[:n])
                done += n
            append_s = time.perf_counter() - started
            on_disk = sum(p.stat().st_size for p in Path(root, "bench").glob("*.log"))

        with EmbeddedBus(root, fsync=fsync) as bus, bus.consumer("bench", "bench") as consumer:
            started = time.perf_counter()
            got = 0
            while True:
                polled = consumer.poll(batch)
                if not polled:
                    break
                got += len(polled)
            poll_s = time.perf_counter() - started
            consumer.commit()
            if got != records or consumer.lag != 0:
                raise SystemExit(f"polled {got} of {records} records, lag {consumer.lag}")
    return {
        "append_per_s": records / append_s,
        "append_mib_per_s": on_disk / append_s / 2**20,
        "poll_per_s": records / poll_s,
        "poll_mib_per_s": on_disk / poll_s / 2**20,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run with fsync on and off, print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=400, help="payload bytes")
    parser.add_argument("--batch", type=int, default=10_000, help="records per append and poll")
    parser.add_argument("--dir", default=None, help="parent folder of the bus (default: temp)")
    args = parser.parse_args(argv)
    print(
        f"embedded bus: {args.records:,} records of {args.size} B (+ key), "
        f"batches of {args.batch:,}, python {sys.version.split()[0]}"
    )
    for fsync in (True, False):
        r = run(args.records, args.size, args.batch, args.dir, fsync)
        print(
            f"fsync={'on ' if fsync else 'off'}  "
            f"append {r['append_per_s']:>12,.0f} records/s ({r['append_mib_per_s']:6.0f} MiB/s)   "
            f"poll {r['poll_per_s']:>12,.0f} records/s ({r['poll_mib_per_s']:6.0f} MiB/s)"
        )


if __name__ == "__main__":
    main()

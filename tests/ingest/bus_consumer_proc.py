"""A consumer for the crash test of ``tests/ingest/test_bus.py``; the test kills it at random.

Usage::

    python tests/ingest/bus_consumer_proc.py ROOT TOPIC GROUP TOTAL OUTPUT SEED

It polls TOPIC of the embedded bus at ROOT in small batches of random size, appends one line
``<offset> <payload>`` per record to OUTPUT, works a little, then commits. Output and committed
offset are kept consistent on restart: lines for offsets at or after the committed offset
(written before a kill but never committed) and an unfinished last line are cut off, so OUTPUT
always holds exactly the records the group has committed. It exits 0 once TOTAL records are
committed.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ingest.bus import EmbeddedBus


def restore(output: Path, committed: int) -> int:
    """Cut OUTPUT back to the lines of offsets below ``committed``; return the lines kept."""
    try:
        data = output.read_bytes()
    except FileNotFoundError:
        data = b""
    keep = 0
    lines = 0
    while True:
        newline = data.find(b"\n", keep)
        if newline == -1:
            break
        offset = int(data[keep : data.index(b" ", keep)])
        if offset >= committed:
            break
        keep = newline + 1
        lines += 1
    with output.open("ab") as f:
        f.truncate(keep)
    print(f"restart at {committed}: kept {lines} lines, cut {len(data) - keep} bytes", flush=True)
    return lines


def main(argv: list[str]) -> int:
    """Consume until TOTAL records are committed; see the module docstring."""
    root, topic, group, total, output, seed = argv
    rng = random.Random(int(seed))
    out_path = Path(output)
    with EmbeddedBus(root) as bus, bus.consumer(topic, group) as consumer:
        restore(out_path, consumer.committed)
        fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while consumer.committed < int(total):
                records = consumer.poll(rng.randint(1, 300))
                if not records:
                    time.sleep(0.002)
                    continue
                for r in records:  # one write per record, so a kill can land mid-batch
                    os.write(fd, b"%d %s\n" % (r.offset, r.payload))
                time.sleep(rng.uniform(0.001, 0.01))  # the rest of the work on the batch
                consumer.commit()
        finally:
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The README's first command, `make demo`, runs `ringfence demo`: run it for real (small)."""

from __future__ import annotations

import json
import re

from serve.cli import main


def test_demo_generates_ingests_and_reconciles_against_the_truth(tmp_path, capsys):
    state = tmp_path / "var"
    assert main(["demo", "--profile", "small", "--seed", "3", "--data-dir", str(state)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.index("\n}\n") + 2])
    truth = json.loads((state / "demo-data" / "small-seed3" / "truth" / "summary.json").read_text())
    totals = summary["totals"]
    assert totals["reconciled"] is True
    assert totals["received"] == totals["accepted"] + totals["rejected"] + totals["duplicates"]
    # every rejection is a planted defect or a noise line, every duplicate a planted redelivery
    assert totals["rejected"] == sum(truth["defects"].values()) + truth["noise_lines"]
    assert totals["duplicates"] == truth["duplicates"]
    # the truth counts planted defects among the events they damaged
    planted = sum(truth["events_by_type"].values())
    assert totals["accepted"] == planted - sum(truth["defects"].values())
    assert set(totals["accepted_by_type"]) == set(truth["events_by_type"])
    table = re.search(r"^TOTAL\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+True$", out, re.M)
    assert table is not None
    assert int(table.group(1)) == totals["received"]


def test_demo_twice_changes_nothing_the_second_time(tmp_path, capsys):
    args = ["demo", "--profile", "small", "--seed", "4", "--data-dir", str(tmp_path / "var")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.index("\n}\n") + 2])
    assert summary["totals"]["accepted"] == 0
    assert summary["dead_letters_added"] == 0

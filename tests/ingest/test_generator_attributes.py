"""Protected customer attributes in the synthetic data (truth/customers.csv): one row per account,
plausible values, deterministic, and without effect on any other output file."""

from __future__ import annotations

import csv
import hashlib
import pickle
import random
import re
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from ingest.generator import PROFILES, FraudConfig, generate
from ingest.generator import runner as runner_mod
from ingest.generator.catalog import HOME_COUNTRIES
from ingest.generator.customers import (
    AGE_BANDS,
    NOT_APPLICABLE,
    SEXES,
    draw_attributes,
)
from ingest.generator.fraud import Ring, plan_rings
from ingest.generator.world import build_world

SEED = 11


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("attrs") / "small"
    generate(out, seed=SEED, **PROFILES["small"])
    return out


@pytest.fixture(scope="module")
def world_and_rings():
    """A world of 2,000 accounts with its rings, built the way the runner builds it."""
    rng = np.random.default_rng(5)
    rnd = random.Random(5)
    world = build_world(start=date(2026, 10, 1), days=7, accounts=2000, rnd=rnd, rng=rng)
    rings = plan_rings(world, FraudConfig.for_accounts(2000), random.Random(6))
    world.assign_ids()
    return world, rings


def test_one_row_per_account_sorted_with_the_documented_header(small):
    path = small / "truth" / "customers.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == (
        "account_id,age_band,sex,region,nationality"
    )
    rows = _csv(path)
    ids = [r["account_id"] for r in rows]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    accounts = {r["account_id"] for r in _csv(small / "truth" / "accounts.csv")}
    assert set(ids) == accounts
    # fraud rings' own (synthetic) accounts are included
    roles = {r["account_id"]: r["role"] for r in _csv(small / "truth" / "accounts.csv")}
    assert any(roles[i] == "ring_member" for i in ids)


def test_values_are_in_the_allowed_sets(small):
    rows = _csv(small / "truth" / "customers.csv")
    roles = {r["account_id"]: r["role"] for r in _csv(small / "truth" / "accounts.csv")}
    persons = [r for r in rows if roles[r["account_id"]] not in ("business", "merchant_owner")]
    businesses = [r for r in rows if roles[r["account_id"]] in ("business", "merchant_owner")]
    assert businesses
    assert len(persons) > 250
    for r in businesses:
        assert (r["age_band"], r["sex"], r["nationality"]) == (NOT_APPLICABLE,) * 3
        assert r["region"] in HOME_COUNTRIES
    for r in persons:
        assert r["age_band"] in AGE_BANDS, r
        assert r["sex"] in SEXES, r
        assert r["region"] in HOME_COUNTRIES, r
        assert re.fullmatch(r"[A-Z]{2}", r["nationality"]), r
    assert {r["age_band"] for r in persons} == set(AGE_BANDS)
    sexes = Counter(r["sex"] for r in persons)
    assert 0.35 < sexes["F"] / len(persons) < 0.65
    home = sum(r["nationality"] == r["region"] for r in persons) / len(persons)
    assert 0.8 < home < 0.97


def test_attributes_are_deterministic_per_seed(small, tmp_path):
    again = generate(tmp_path / "again", seed=SEED, **PROFILES["small"]).out_dir
    other = generate(tmp_path / "other", seed=SEED + 1, **PROFILES["small"]).out_dir
    name = Path("truth") / "customers.csv"
    assert (again / name).read_bytes() == (small / name).read_bytes()
    assert (other / name).read_bytes() != (small / name).read_bytes()


def test_attributes_leave_every_other_output_file_unchanged(small, tmp_path, monkeypatch):
    """A run with the attribute step switched off writes exactly the same other files."""
    monkeypatch.setattr(runner_mod, "write_customers", lambda *a, **k: None)
    without = generate(tmp_path / "without", seed=SEED, **PROFILES["small"]).out_dir
    with_attrs = _hashes(small)
    without_attrs = _hashes(without)
    customers = str(Path("truth") / "customers.csv")
    assert customers in with_attrs
    assert customers not in without_attrs
    del with_attrs[customers]
    assert with_attrs == without_attrs


def test_drawing_attributes_touches_no_shared_random_stream_or_account(world_and_rings):
    world, rings = world_and_rings
    state = world.rnd.getstate()
    accounts = pickle.dumps(world.accounts)
    members = pickle.dumps([r.members for r in rings])
    first = draw_attributes(world, rings, seed=3)
    assert world.rnd.getstate() == state
    assert pickle.dumps(world.accounts) == accounts
    assert pickle.dumps([r.members for r in rings]) == members
    assert draw_attributes(world, rings, seed=3) == first
    assert draw_attributes(world, rings, seed=4) != first


def test_attributes_never_reach_any_source_the_ingest_reads(small):
    for p in small.rglob("*"):
        if p.is_file() and p.relative_to(small).parts[0] != "truth":
            data = p.read_bytes()
            assert b"age_band" not in data, p
            assert b"nationality" not in data, p


def test_age_bands_follow_the_archetype(world_and_rings):
    world, rings = world_and_rings
    attrs = {c.account_id: c for c in draw_attributes(world, rings, seed=3)}
    assert len(attrs) == len(world.accounts)
    shifted = {a.idx for r in rings for a, role in r.members if role in ("mule", "victim")}
    by_arche: dict[str, Counter[str]] = {}
    for a in world.accounts:
        if a.kind == "business":
            assert attrs[a.account_id].age_band == NOT_APPLICABLE
            continue
        if a.idx in shifted and a.archetype not in ("retired", "student"):
            continue  # mules and scam victims may move (see the next tests)
        arche = "synthetic" if a.synthetic else a.archetype
        by_arche.setdefault(arche, Counter())[attrs[a.account_id].age_band] += 1
    # the retired are 65+ (a few 55-64), even as scam victims or mules
    assert any(world.accounts[i].archetype == "retired" for i in shifted)
    retired = by_arche["retired"]
    assert set(retired) <= {"55-64", "65+"}
    assert retired["65+"] / sum(retired.values()) > 0.8
    student = by_arche["student"]
    assert set(student) <= {"18-24", "25-34"}
    assert student["18-24"] / sum(student.values()) > 0.75
    assert "65+" not in by_arche["family"]
    assert "18-24" not in by_arche["corporate"]
    assert set(by_arche["synthetic"]) <= {"18-24", "25-34", "35-44", "45-54"}


def test_household_members_mostly_share_a_nationality(world_and_rings):
    world, rings = world_and_rings
    attrs = {c.account_id: c for c in draw_attributes(world, rings, seed=3)}
    households: dict[int, list[str]] = {}
    for a in world.accounts:
        if a.kind != "business" and a.household >= 0:
            households.setdefault(a.household, []).append(attrs[a.account_id].nationality)
    multi = [h for h in households.values() if len(h) > 1]
    foreign = [h for h in multi if any(n not in HOME_COUNTRIES for n in h)]
    assert len(multi) > 100
    assert foreign
    same = sum(len(set(h)) == 1 for h in multi) / len(multi)
    assert same > 0.75


def test_fraud_roles_shift_ages_mildly_and_change_nothing_else(world_and_rings):
    """Make every non-retired honest person a mule: about 30% move to 18-34, others keep theirs."""
    world, _ = world_and_rings
    persons = [
        world.accounts[i]
        for i in world.persons
        if world.accounts[i].archetype not in ("retired", "student")
    ]
    mules = Ring("ring_x", "mule_network", [(a, "mule") for a in persons])
    plain = {c.account_id: c for c in draw_attributes(world, [], seed=3)}
    shifted = {c.account_id: c for c in draw_attributes(world, [mules], seed=3)}
    assert plain.keys() == shifted.keys()
    changed = [a for a in persons if plain[a.account_id] != shifted[a.account_id]]
    for a in changed:
        before, after = plain[a.account_id], shifted[a.account_id]
        assert (before.sex, before.region, before.nationality) == (
            after.sex,
            after.region,
            after.nationality,
        )
        assert after.age_band in ("18-24", "25-34")
    young_before = sum(plain[a.account_id].age_band in ("18-24", "25-34") for a in persons)
    young_after = sum(shifted[a.account_id].age_band in ("18-24", "25-34") for a in persons)
    share_before, share_after = young_before / len(persons), young_after / len(persons)
    assert 0.1 < share_after - share_before < 0.3, (share_before, share_after)
    others = set(plain) - {a.account_id for a in persons}
    assert all(plain[i] == shifted[i] for i in others)

    victims = Ring("ring_y", "mule_network", [(world.accounts[i], "victim") for i in world.persons])
    old = {c.account_id: c for c in draw_attributes(world, [victims], seed=3)}
    old_before = sum(plain[i].age_band in ("55-64", "65+") for i in plain)
    old_after = sum(old[i].age_band in ("55-64", "65+") for i in old)
    assert 0.1 < (old_after - old_before) / len(world.persons) < 0.35

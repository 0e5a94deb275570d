"""Ring detection: each detector on a planted pattern, hub safeguards, stable ids, persistence,
order invariance, and the evaluation against the generator's truth on the small profile."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from graph.evaluate import evaluate
from graph.model import REL_TARGET, EdgeUpdate, edges_from_event
from graph.rings import Ring, RingConfig, RingDetector
from graph.rings.identifiers import IdentifierIndex
from graph.rings.money import MoneyIndex

T0 = 1_790_000_000.0  # 2026-09-21, any fixed instant will do
HOUR = 3600.0
DAY = 86400.0
REL = {kind: rel for rel, kind in REL_TARGET.items() if kind != "account"}


def uses(account: str, kind: str, value: str, ts: float = T0) -> EdgeUpdate:
    return EdgeUpdate(REL[kind], account, kind, value, ts)


def transfer(src: str, dst: str, ts: float, amount: float, failed: bool = False) -> EdgeUpdate:
    return EdgeUpdate("TRANSFERS_TO", src, "account", dst, ts, amount, failed)


def pay(account: str, merchant: str, ts: float, amount: float, failed: bool = False) -> EdgeUpdate:
    return EdgeUpdate("PAYS", account, "merchant", merchant, ts, amount, failed)


def sharing(accounts: list[str], *pairs: tuple[str, str], ts: float = T0) -> list[EdgeUpdate]:
    """Every account uses every ``(kind, value)``."""
    return [uses(a, k, v, ts + i) for i, a in enumerate(accounts) for k, v in pairs]


def own_history(account: str, ts: float = T0) -> list[EdgeUpdate]:
    """An account's own device, e-mail and phone, used from ``ts``."""
    return [
        uses(account, "device", f"dev_own_{account}", ts),
        uses(account, "email", f"{account}@mail.test", ts),
        uses(account, "phone", f"+4477{abs(hash(account)) % 10**8:08d}", ts),
    ]


def members(detector: RingDetector) -> list[list[str]]:
    return sorted(r.accounts for r in detector.rings())


def ring_accounts(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(n)]


# -- shared identifiers --------------------------------------------------------------------------


def test_accounts_sharing_device_and_phone_form_a_ring():
    d = RingDetector()
    accts = ring_accounts("syn", 5)
    changed = d.update(sharing(accts, ("device", "dev_x"), ("phone", "+447700900001")))
    (ring,) = d.rings()
    assert ring.accounts == accts
    assert ring.typology == "synthetic_identity"
    assert ("device", "dev_x") in ring.entities
    assert ("phone", "+447700900001") in ring.entities
    assert 0 < ring.risk < 1
    assert changed == {ring.id}
    assert d.ring_of("syn03") is ring
    assert d.ring_of("nobody") is None


def test_one_shared_identifier_or_a_shared_home_is_not_a_ring():
    d = RingDetector()
    # namesakes: the same e-mail and nothing else
    d.update(sharing(["n1", "n2", "n3"], ("email", "john.smith@gmail.test")))
    # a household: address, home IP, the family computer and a family e-mail
    home = (("address", "1 high st"), ("ip", "81.2.0.7"), ("device", "dev_pc"))
    d.update(sharing(["h1", "h2", "h3", "h4"], *home, ("email", "family@mail.test")))
    assert d.rings() == []
    # the same household sharing a phone as well is tied by more than a home
    d.update(sharing(["h1", "h2"], ("phone", "+447700900002")))
    assert members(d) == [["h1", "h2", "h3", "h4"]]  # h3, h4 attached: they use its identifiers


def test_accounts_outside_a_ring_join_it_through_its_own_identifiers():
    d = RingDetector()
    core = ring_accounts("c", 3)
    d.update(sharing(core, ("device", "dev_ring"), ("ip", "5.5.5.5"), ("phone", "+447700900003")))
    # uses the ring's device and IP, but has its own phone: attached
    d.update(sharing(["joiner"], ("device", "dev_ring"), ("ip", "5.5.5.5")))
    # lives with a ring member (shares its home only): not attached
    d.update(sharing(["c00", "flatmate"], ("address", "2 low st"), ("ip", "9.9.9.9")))
    (ring,) = d.rings()
    assert ring.accounts == [*core, "joiner"]
    assert ring.core == core


# -- hub safeguards ------------------------------------------------------------------------------


def test_a_cafe_ip_shared_by_500_honest_accounts_is_no_ring_but_5_sharing_a_phone_are():
    d = RingDetector()
    crowd = ring_accounts("cafe", 500)
    batch = []
    for i, a in enumerate(crowd):
        ts = T0 + i * 60
        batch += own_history(a, ts)
        batch += [uses(a, "ip", "203.0.113.10", ts), uses(a, "device", "dev_emulator", ts)]
        batch += [pay(a, "mch_coffee", ts, 3.5)]
    ring = ring_accounts("syn", 5)
    tie = (("device", "dev_ring"), ("phone", "+447700900004"), ("ip", "203.0.113.10"))
    batch += sharing(ring, *tie)
    random.Random(3).shuffle(batch)
    for i in range(0, len(batch), 700):
        d.update(batch[i : i + 700])
    assert members(d) == [ring]
    assert d._ids.is_hub("ip:203.0.113.10")
    assert d._ids.is_hub("device:dev_emulator")
    assert ("ip", "203.0.113.10") not in d.rings()[0].entities


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (RingConfig(personal_kinds=()), 0),  # the degree caps stop the glue
        (RingConfig(personal_kinds=(), degree_caps=()), 1),  # without caps: one giant ring
        (
            RingConfig(
                personal_kinds=(),
                degree_caps=(),
                allowlist=(("ip", "203.0.113.10"), ("device", "dev_emulator")),
            ),
            0,
        ),
    ],
)
def test_degree_caps_and_allowlist_keep_hubs_from_gluing_everyone(config, expected):
    # with personal_kinds=() any two shared kinds link: only the hub safeguards are left
    d = RingDetector(config)
    crowd = ring_accounts("cafe", 200)
    d.update(sharing(crowd, ("ip", "203.0.113.10"), ("device", "dev_emulator")))
    assert len(d.rings()) == expected
    if expected:
        assert d.rings()[0].size == 200


def test_an_identifier_that_becomes_a_hub_withdraws_the_links_it_made():
    d = RingDetector()
    trio = ["a1", "a2", "a3"]
    d.update(sharing(trio, ("phone", "+447700900005"), ("ip", "198.51.100.9")))
    (ring,) = d.rings()
    # the IP turns out to be public Wi-Fi: the trio now shares one kind only
    changed = d.update(sharing(ring_accounts("wifi", 20), ("ip", "198.51.100.9"), ts=T0 + HOUR))
    assert d.rings() == []
    assert ring.id in changed
    assert d.ring(ring.id) is None


def test_time_decay_links_only_uses_close_in_time_and_forgets_idle_users():
    cfg = RingConfig(degree_caps=(("device", 3),))
    d = RingDetector(cfg)
    # two accounts using one device and phone 60 days apart are not linked
    d.update(sharing(["old"], ("device", "dev_2nd_hand"), ("phone", "+447700900006")))
    d.update(
        sharing(["new"], ("device", "dev_2nd_hand"), ("phone", "+447700900006"), ts=T0 + 60 * DAY)
    )
    assert d.rings() == []
    # a device passed on every month is not a hub: idle users are forgotten
    for month in range(4):
        d.update(sharing([f"m{month}"], ("device", "dev_family"), ts=T0 + month * 35 * DAY))
    assert not d._ids.is_hub("device:dev_family")
    # ... but four at once are, over a cap of 3
    d.update(sharing(["x1", "x2", "x3", "x4"], ("device", "dev_busy")))
    assert d._ids.is_hub("device:dev_busy")


# -- money patterns ------------------------------------------------------------------------------


def test_a_cycle_is_round_tripping_whatever_order_its_transfers_arrive_in():
    hops = [
        transfer("rt_a", "rt_b", T0, 25_000),
        transfer("rt_b", "rt_c", T0 + 6 * HOUR, 24_800),
        transfer("rt_c", "rt_d", T0 + 20 * HOUR, 24_500),
        transfer("rt_d", "rt_a", T0 + 30 * HOUR, 24_300),
    ]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        d = RingDetector()
        for i in order:
            d.update([hops[i]])
        (ring,) = d.rings()
        assert ring.accounts == ["rt_a", "rt_b", "rt_c", "rt_d"]
        assert ring.typology == "round_tripping"
        cycle = next(e for e in ring.evidence if e["type"] == "cycle")
        assert cycle["accounts"] == ["rt_a", "rt_b", "rt_c", "rt_d"]


def test_repayments_mismatched_amounts_and_slow_cycles_are_not_round_tripping():
    d = RingDetector()
    d.update([transfer("p", "q", T0, 500), transfer("q", "p", T0 + DAY, 500)])  # A->B->A
    d.update(
        [  # amounts far apart
            transfer("x", "y", T0, 5_000),
            transfer("y", "z", T0 + HOUR, 900),
            transfer("z", "x", T0 + 2 * HOUR, 4_000),
        ]
    )
    d.update(
        [  # spread over a month
            transfer("s", "t", T0, 3_000),
            transfer("t", "u", T0 + 15 * DAY, 3_000),
            transfer("u", "s", T0 + 30 * DAY, 3_000),
        ]
    )
    assert [r for r in d.rings() if r.typology == "round_tripping"] == []


def mule_network() -> list[EdgeUpdate]:
    """Four scam victims pay a mule; it forwards to a layer account, which pays a collector."""
    day = T0 + 2 * DAY
    batch = [transfer(f"victim{i}", "mule", day + i * HOUR, 600 + 50 * i) for i in range(4)]
    received = sum(600 + 50 * i for i in range(4))
    batch.append(transfer("mule", "layer", day + 6 * HOUR, round(received * 0.9, 2)))
    batch.append(transfer("layer", "boss", day + 9 * HOUR, round(received * 0.86, 2)))
    # ordinary life around them: a salary and a rent payment, days apart
    batch.append(transfer("employer", "mule", T0, 2_400))
    batch.append(transfer("mule", "landlord", T0 + 10 * DAY, 900))
    return batch


def test_fan_in_then_fan_out_is_a_mule_network_with_its_layering_chain():
    d = RingDetector()
    d.update(mule_network())
    (ring,) = d.rings()
    assert ring.accounts == ["boss", "layer", "mule", "victim0", "victim1", "victim2", "victim3"]
    assert ring.typology == "mule_network"
    types = {e["type"] for e in ring.evidence}
    assert {"mule_star", "layering"} <= types
    star = next(e for e in ring.evidence if e["type"] == "mule_star")
    assert star["account"] == "mule"
    assert star["receivers"] == ["layer"]


def test_a_pass_through_that_turns_out_to_be_a_payroll_account_is_withdrawn():
    d = RingDetector()
    # 'shop' receives from two accounts and pays most of it on within hours: a mule star, so far
    d.update(
        [
            transfer("cust1", "shop", T0, 400),
            transfer("boss1", "shop", T0 + HOUR, 500),
            transfer("shop", "supplier", T0 + 3 * HOUR, 800),
        ]
    )
    assert members(d) == [["boss1", "cust1", "shop", "supplier"]]
    # then boss1 pays 40 salaries: an employer, a money hub; without it 'shop' has one sender
    changed = d.update([transfer("boss1", f"staff{i}", T0 + 2 * DAY, 2_000) for i in range(40)])
    assert d.rings() == []
    assert changed


def test_kickbacks_to_a_merchants_customers_are_a_collusive_merchant():
    d = RingDetector()
    batch = []
    for i in range(3):
        card = f"card{i}"
        batch += [
            pay(card, "mch_till", T0 + i * HOUR, 500),
            pay(card, "mch_till", T0 + DAY + i * HOUR, 300),
            pay(card, "mch_till", T0 + 3 * DAY, 300, failed=True),  # refunded
            transfer("owner", card, T0 + 5 * DAY + i * HOUR, 400),
        ]
    batch.append(pay("card0", "mch_grocer", T0, 40))
    d.update(batch)
    (ring,) = d.rings()
    assert ring.accounts == ["card0", "card1", "card2", "owner"]
    assert ring.typology == "collusive_merchant"
    assert ("merchant", "mch_till") in ring.entities


def test_a_ring_pays_its_collector():
    d = RingDetector()
    accts = ring_accounts("syn", 4)
    batch = sharing(accts, ("device", "dev_x"), ("phone", "+447700900007"))
    batch += [transfer(a, "cash_out", T0 + 10 * DAY + i * HOUR, 1_500) for i, a in enumerate(accts)]
    # a victim of nobody: one ring member paying a friend is not a collector
    batch.append(transfer("syn00", "friend", T0 + 3 * DAY, 200))
    d.update(batch)
    (ring,) = d.rings()
    assert ring.accounts == sorted([*accts, "cash_out"])
    assert any(e["type"] == "collector" for e in ring.evidence)


# -- typology from identifier evidence -----------------------------------------------------------


def test_tiny_declined_payments_make_it_card_testing():
    d = RingDetector()
    batch = []
    for i, v in enumerate(["v1", "v2", "v3"]):
        batch += own_history(v)
        ts = T0 + 9 * DAY + i * 600
        batch += [uses(v, "device", "dev_tester", ts), uses(v, "email", "qx81@burner.test", ts)]
        batch += [pay(v, "mch_games", ts + k, 1.0, failed=k % 2 == 0) for k in range(6)]
    d.update(batch)
    (ring,) = d.rings()
    assert ring.typology == "card_testing"


def test_switching_to_the_same_new_email_is_account_takeover():
    d = RingDetector()
    batch = []
    for i, v in enumerate(["t1", "t2", "t3"]):
        batch += own_history(v)
        # the crew changes each victim's e-mail to its own, days apart, from different devices
        batch += [uses(v, "email", "crew@burner.test", T0 + (5 + 6 * i) * DAY)]
    d.update(batch)
    (ring,) = d.rings()
    assert ring.accounts == ["t1", "t2", "t3"]
    assert ring.typology == "account_takeover"


# -- stable ids ------------------------------------------------------------------------------------


def test_a_ring_keeps_its_id_as_it_grows():
    d = RingDetector()
    tie = (("device", "dev_x"), ("phone", "+447700900008"))
    d.update(sharing(["g1", "g2"], *tie))
    (first,) = d.rings()
    changed = d.update(sharing(["g3"], *tie, ts=T0 + DAY))
    (grown,) = d.rings()
    assert grown.id == first.id
    assert grown.accounts == ["g1", "g2", "g3"]
    assert changed == {first.id}
    assert d.update(sharing(["g3"], *tie, ts=T0 + DAY)) == set()  # nothing new: no change


def test_when_two_rings_merge_the_older_id_wins():
    d = RingDetector()
    d.update(sharing(["o1", "o2", "o3"], ("device", "dev_o"), ("phone", "+447700900009")))
    d.update(
        sharing(["y1", "y2"], ("device", "dev_y"), ("phone", "+447700900010"), ts=T0 + 5 * DAY)
    )
    old, young = sorted(d.rings(), key=lambda r: r.first_seen)
    changed = d.update(
        sharing(["o1", "y1"], ("card", "tok_shared"), ("email", "both@mail.test"), ts=T0 + 6 * DAY)
    )
    (merged,) = d.rings()
    assert merged.id == old.id
    assert merged.accounts == ["o1", "o2", "o3", "y1", "y2"]
    assert changed == {old.id, young.id}
    assert d.ring(young.id) is merged


# -- communities -----------------------------------------------------------------------------------


def test_a_large_component_is_split_into_its_louvain_communities():
    d = RingDetector(RingConfig(community_min_size=8))
    left, right = ring_accounts("l", 6), ring_accounts("r", 6)
    batch = sharing(left, ("device", "dev_l"), ("phone", "+447700900011"), ("ip", "6.6.6.6"))
    batch += sharing(right, ("device", "dev_r"), ("phone", "+447700900012"), ("ip", "7.7.7.7"))
    batch += sharing(["l00", "r00"], ("card", "tok_bridge"), ("email", "bridge@mail.test"))
    d.update(batch)
    assert members(d) == [left, right]
    # one more member joins the community it is tied to without a new partition
    d.update(sharing(["l06"], ("device", "dev_l"), ("phone", "+447700900011"), ts=T0 + HOUR))
    assert members(d) == [[*left, "l06"], right]


# -- persistence, determinism, order ---------------------------------------------------------------


def scenario() -> list[EdgeUpdate]:
    batch = mule_network()
    batch += sharing(ring_accounts("syn", 4), ("device", "dev_x"), ("phone", "+447700900013"))
    batch += [
        transfer("rt_a", "rt_b", T0, 9_000),
        transfer("rt_b", "rt_c", T0 + 5 * HOUR, 8_900),
        transfer("rt_c", "rt_a", T0 + 9 * HOUR, 8_850),
    ]
    batch += sharing(ring_accounts("cafe", 40), ("ip", "203.0.113.20"))
    return batch


def test_snapshot_and_restore_give_the_same_rings_and_the_same_future():
    d = RingDetector()
    batch = scenario()
    d.update(batch[:30])
    d.update(batch[30:])
    restored = RingDetector.restore(d.snapshot())
    assert [r.to_dict() for r in restored.rings()] == [r.to_dict() for r in d.rings()]
    assert restored.config == d.config
    more = sharing(["syn04"], ("device", "dev_x"), ("phone", "+447700900013"), ts=T0 + DAY)
    assert restored.update(more) == d.update(more)
    assert [r.to_dict() for r in restored.rings()] == [r.to_dict() for r in d.rings()]


def test_same_input_same_rings_and_order_does_not_matter():
    batch = scenario()
    reference = RingDetector()
    reference.update(batch)
    expected = sorted((r.accounts, r.typology) for r in reference.rings())
    assert len(expected) == 3
    again = RingDetector()
    again.update(batch)
    assert [r.to_dict() for r in again.rings()] == [r.to_dict() for r in reference.rings()]
    for seed in range(3):
        shuffled = batch[:]
        random.Random(seed).shuffle(shuffled)
        d = RingDetector()
        for i in range(0, len(shuffled), 7):
            d.update(shuffled[i : i + 7])
        assert sorted((r.accounts, r.typology) for r in d.rings()) == expected


def test_observing_in_pieces_then_updating_gives_what_one_update_gives():
    batch = scenario() + _random_uses_and_transfers(3, days=12)
    whole, pieces = RingDetector(), RingDetector()
    for start in range(0, len(batch), 1000):
        chunk = batch[start : start + 1000]
        whole.update(chunk)
        before = pieces.rings()
        for i in range(0, len(chunk), 64):
            pieces.observe(chunk[i : i + 64])
        assert pieces.rings() == before  # rings change only on update
        pieces.update([])
        assert [r.to_dict() for r in pieces.rings()] == [r.to_dict() for r in whole.rings()]
    assert whole.rings()
    half = RingDetector()  # a snapshot between observing and updating keeps what is pending
    half.update(batch[:1000])
    half.observe(batch[1000:2000])
    restored = RingDetector.restore(half.snapshot())
    restored.update([])
    half.update([])
    assert [r.to_dict() for r in restored.rings()] == [r.to_dict() for r in half.rings()]


def test_queries_and_bad_input():
    d = RingDetector()
    d.update(scenario())
    assert {r.typology for r in d.rings(typology="mule_network")} == {"mule_network"}
    assert d.rings(min_size=5) == [r for r in d.rings() if r.size >= 5]
    assert d.rings(since=T0 + 100 * DAY) == []
    risks = [r.risk for r in d.rings()]
    assert risks == sorted(risks, reverse=True)
    as_json = d.rings()[0].to_dict()
    assert {"id", "accounts", "entities", "evidence", "risk", "typology"} <= as_json.keys()
    with pytest.raises(ValueError, match="typology"):
        d.rings(typology="bogus")
    with pytest.raises(ValueError, match="snapshot"):
        RingDetector.restore(b"not a snapshot")
    with pytest.raises(ValueError, match="pass_ratio"):
        RingConfig(pass_ratio=0)
    assert d.update([]) == set()


# -- against the generator's truth -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from ingest.bus import EmbeddedBus
    from ingest.events import decode_event
    from ingest.generator import PROFILES, generate
    from serve.cli import run_ingest
    from serve.settings import Settings

    root = tmp_path_factory.mktemp("rings")
    generate(root / "data", seed=SMALL_SEED, **PROFILES["small"])
    run_ingest(Settings(data_dir=root / "state"), root / "data", expectations=False, quiet=True)
    consumer = EmbeddedBus(root / "state" / "bus").consumer("events", "rings-test")
    d = RingDetector()
    while records := consumer.poll(2000):
        d.update([u for r in records for u in edges_from_event(decode_event(r.payload))])
    return d, root / "data" / "truth"


SMALL_SEED = 5
"""Measured on this seed (docs/rings.md has the figures and other seeds): synthetic identity,
round tripping and card testing F1 1.0, mule network 0.88, 4 of 302 honest accounts in rings."""


def test_rings_found_on_the_small_profile_match_the_truth(small_run):
    d, truth = small_run
    report = evaluate(d.rings(), truth)
    f1 = {t: r.f1 for t, r in report.rows.items()}
    assert f1["synthetic_identity"] >= 0.95
    assert f1["round_tripping"] >= 0.95
    assert f1["card_testing"] >= 0.95
    assert f1["mule_network"] >= 0.85
    assert report.honest_flagged_share <= 0.015
    assert report.typology_agreement >= 0.9
    rings: list[Ring] = d.rings()
    assert all(r.size >= 2 and 0 <= r.risk <= 1 for r in rings)
    assert evaluate([r.to_dict() for r in rings], truth) == report
    assert Path(truth, "accounts.csv").exists()


def test_old_transfers_are_forgotten_but_rings_are_kept():
    d = RingDetector(RingConfig(retention_s=10 * DAY))
    d.update(mule_network())
    (ring,) = d.rings()
    d.update([transfer("later_a", "later_b", T0 + 60 * DAY, 50)])
    assert d.rings() == [ring]
    assert "mule" not in d._money.out
    assert "mule" not in d._money.episodes


def _random_uses_and_transfers(seed: int, days: int = 40) -> list[EdgeUpdate]:
    """Identifier uses and transfers among a few dozen accounts, roughly in time order."""
    rng = random.Random(seed)
    accounts = ring_accounts("acc", 40)
    out = []
    for _ in range(6000):
        ts = T0 + rng.uniform(0, days * DAY)
        a = rng.choice(accounts)
        if rng.random() < 0.3:
            out.append(transfer(a, rng.choice(accounts), ts, rng.choice([20.0, 900.0, 1500.0])))
        else:
            kind = rng.choice(["device", "ip", "phone", "email"])
            out.append(uses(a, kind, f"{kind}{rng.randrange(80)}", ts))
    out.sort(key=lambda u: u.ts + rng.uniform(-2 * DAY, 2 * DAY))  # late arrivals by up to 4 days
    return out


def _feed(ids: IdentifierIndex, money: MoneyIndex, updates: list[EdgeUpdate]) -> None:
    for u in updates:
        if u.rel == "TRANSFERS_TO":
            money.add(u.src_id, u.dst_id, u.ts, u.amount)
        else:
            ids.observe(f"{u.dst_kind}:{u.dst_id}", u.src_id, u.ts)
    money.detect()  # pass-through records are kept, and pruned, too


def test_pruning_forgets_exactly_what_is_older_than_the_horizon():
    stream = _random_uses_and_transfers(7)
    ids, money = IdentifierIndex(RingConfig()), MoneyIndex(RingConfig())
    dropped_any = 0
    for start in range(0, len(stream), 400):
        _feed(ids, money, stream[start : start + 400])
        horizon = max(u.ts for u in stream[: start + 400]) - 8 * DAY
        users, linked = copy.deepcopy(ids.users), dict(ids._linked)
        m = copy.deepcopy(money.state())
        out, inn = copy.deepcopy(money.out), copy.deepcopy(money.inn)
        ids.prune(horizon)
        money.prune(horizon)

        kept = {k: u for k, u in users.items() if max(s[1] for s in u.values()) >= horizon}
        dropped = users.keys() - kept.keys()
        dropped_any += len(dropped)
        assert ids.users == kept
        assert ids._linked == {k: n for k, n in linked.items() if k not in dropped}
        assert not any(keys & dropped for keys in ids.keys_of.values())

        for got, book in ((money.out, out), (money.inn, inn)):
            recent = {a: [e for e in lst if e[0] >= horizon] for a, lst in book.items()}
            assert got == {a: lst for a, lst in recent.items() if lst}
        parties = {a: {c: t for c, t in p.items() if t >= horizon} for a, p in m["parties"].items()}
        assert money.parties == {a: p for a, p in parties.items() if p}
        assert sorted(money._amounts) == sorted(
            (s, d, t) for s, d, t, _ in m["amounts"] if t >= horizon
        )
        for got, before in ((money.pt_in, m["pt_in"]), (money.pt_out, m["pt_out"])):
            assert got == {tuple(k) for k in before if k[2] >= horizon}
        episodes = {
            a: {
                side: {k: x for k, x in ep[side].items() if float(k.rsplit("|")[1]) >= horizon}
                for side in ("in", "out")
            }
            for a, ep in m["episodes"].items()
        }
        assert money.episodes == {a: ep for a, ep in episodes.items() if ep["in"] or ep["out"]}
    assert dropped_any > 100  # the stream did age identifiers out


def test_indexes_loaded_from_a_snapshot_prune_as_the_originals_do():
    stream = _random_uses_and_transfers(11)
    ids, money = IdentifierIndex(RingConfig()), MoneyIndex(RingConfig())
    _feed(ids, money, stream[:3000])
    ids.prune(stream[2999].ts - 8 * DAY)
    money.prune(stream[2999].ts - 8 * DAY)
    ids2, money2 = IdentifierIndex(RingConfig()), MoneyIndex(RingConfig())
    ids2.load(copy.deepcopy(ids.state()))
    money2.load(copy.deepcopy(money.state()))
    for a, b in ((ids, money), (ids2, money2)):
        _feed(a, b, stream[3000:])
        a.prune(stream[-1].ts - 5 * DAY)
        b.prune(stream[-1].ts - 5 * DAY)
    assert ids2.users == ids.users
    assert ids2.keys_of == ids.keys_of
    for name in ("out", "inn", "parties", "episodes", "_amounts", "pt_in", "pt_out"):
        assert getattr(money2, name) == getattr(money, name), name


def test_evaluation_counts_accounts_and_charges_honest_ones_to_their_rings_typology():
    truth = [
        ("m1", "mule_network", "mule"),
        ("m2", "mule_network", "victim"),
        ("m3", "mule_network", "victim"),
        ("s1", "synthetic_identity", "ring_member"),
        ("s2", "synthetic_identity", "ring_member"),
        *[(f"h{i}", "", "customer") for i in range(10)],
    ]
    rings = [
        {"accounts": ["m1", "m2", "h0"], "typology": "mule_network"},
        {"accounts": ["s1", "s2"], "typology": "synthetic_identity"},
        {"accounts": ["h1", "h2"], "typology": "unknown"},
        {"accounts": ["h3"], "typology": "unknown"},  # one account is not a ring
    ]
    report = evaluate(rings, Path("unused"), truth=truth)
    mule, synthetic = report.rows["mule_network"], report.rows["synthetic_identity"]
    assert (mule.flagged, mule.false_positives) == (2, 1)
    assert mule.recall == pytest.approx(2 / 3)
    assert mule.precision == pytest.approx(2 / 3)
    assert (synthetic.precision, synthetic.recall, synthetic.f1) == (1.0, 1.0, 1.0)
    assert report.honest_flagged == 3
    assert report.honest_flagged_share == pytest.approx(0.3)
    assert (report.rings, report.false_rings) == (3, 1)
    assert report.overall.precision == pytest.approx(4 / 7)
    assert report.recall_by_role["mule_network/victim"] == 0.5
    assert "| mule_network | 3 | 2 | 1 |" in report.table()


def test_ring_purity_tells_glued_fraud_rings_apart():
    truth = [(f"a{i}", "mule_network", "mule", "ring_a") for i in range(3)]
    truth += [(f"b{i}", "mule_network", "mule", "ring_b") for i in range(2)]
    glued = evaluate([{"accounts": ["a0", "a1", "a2", "b0", "b1"]}], Path("unused"), truth=truth)
    apart = evaluate(
        [{"accounts": ["a0", "a1", "a2"]}, {"accounts": ["b0", "b1"]}], Path("unused"), truth=truth
    )
    assert glued.ring_purity == pytest.approx(3 / 5)
    assert apart.ring_purity == 1.0
    assert glued.rows["mule_network"].f1 == apart.rows["mule_network"].f1 == 1.0


def test_the_example_in_docs_rings_md_runs():
    text = (Path(__file__).resolve().parents[2] / "docs" / "rings.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/rings.md", "exec"), {})

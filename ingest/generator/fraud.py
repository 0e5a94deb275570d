"""Fraud typologies: who takes part (:meth:`Ring.cast`) and what they do (:meth:`Ring.emit`).

Each ring is planned in two steps because accounts are numbered between them
(:meth:`ingest.generator.world.World.assign_ids`): casting picks honest accounts for the roles
(mule, victim, ring member...) and creates the accounts fraudsters open themselves; emitting
writes their events through the same :class:`~ingest.generator.emit.Emitter` as everyone else,
labelled with the typology and the ring id.

Fraudsters try to look normal: amounts near the victim's usual, delays of hours between hops,
ordinary merchant categories, ordinary-looking phones. What gives them away is mostly in the
graph: shared devices, phones, e-mails, addresses and IPs, money moving in fans, chains and
cycles, one merchant or one far-away city tying many cards together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingest.generator import catalog as cat
from ingest.generator.config import FraudConfig
from ingest.generator.emit import Emitter, Label
from ingest.generator.legit import geo_of
from ingest.generator.world import BANK_COUNTRIES, Account, City, Merchant, World
from ingest.reference import CURRENCY_EXPONENTS

HOUR = 3600
MINUTE = 60


def _rand(rnd: random.Random, r: tuple[int, int]) -> int:
    return rnd.randint(r[0], r[1])


def _poisson(rnd: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; fine for the small rates used here)."""
    limit, k, p = math.exp(-lam), 0, rnd.random()
    while p > limit:
        k += 1
        p *= rnd.random()
    return k


def _money(rnd: random.Random, eur_mu: float, eur_sigma: float, currency: str) -> float:
    """A log-normal amount given in EUR terms, converted and rounded for ``currency``."""
    eur = math.exp(rnd.gauss(eur_mu, eur_sigma))
    exp = CURRENCY_EXPONENTS[currency]
    amount = max(round(eur * cat.FX_PER_EUR[currency], exp), 1.0)
    return int(amount) if exp == 0 else amount


class Casting:
    """Hands out honest accounts for fraud roles, each at most once.

    Args:
        world: the population.
        rnd: random source.
    """

    def __init__(self, world: World, rnd: random.Random) -> None:
        self.w = world
        self.rnd = rnd
        pool = [
            i
            for i in world.persons
            if world.accounts[i].opened_day is None
            and world.accounts[i].closed_day is None
            and world.accounts[i].kind == "person"
        ]
        rnd.shuffle(pool)
        self._pool = pool
        self.mules: list[tuple[Account, str]] = []

    def take(self, n: int, country: str | None = None) -> list[Account]:
        """Up to ``n`` unused honest persons (from ``country`` when given, if enough remain)."""
        out: list[Account] = []
        keep: list[int] = []
        while self._pool and len(out) < n:
            i = self._pool.pop()
            a = self.w.accounts[i]
            if country is None or a.country == country:
                out.append(a)
            else:
                keep.append(i)
        self._pool.extend(reversed(keep))
        if len(out) < n and country is not None:
            out += self.take(n - len(out))
        return out


@dataclass(slots=True)
class Ring:
    """One fraud ring: its id, typology and members with their roles."""

    ring_id: str
    typology: str
    members: list[tuple[Account, str]] = field(default_factory=list)

    @property
    def label(self) -> Label:
        """The truth label of this ring's events."""
        return (self.typology, self.ring_id)

    def emit(self, em: Emitter, rnd: random.Random) -> None:
        """Write the ring's events."""
        raise NotImplementedError


RingFactory = Callable[[str, World, "Casting", FraudConfig, random.Random], Ring]
"""A typology's constructor: (ring id, world, casting, knobs, random source) -> ring."""


def _country(rnd: random.Random) -> str:
    return rnd.choices(cat.HOME_COUNTRIES, weights=cat.HOME_WEIGHTS)[0]


def _city(rnd: random.Random, country: str) -> City:
    cities = [c for c in cat.CITIES if c.country == country]
    return rnd.choices(cities, weights=[c.weight for c in cities])[0]


# -- 1. synthetic identities ------------------------------------------------------------------


class SyntheticIdentity(Ring):
    """Synthetic identities: invented customers who share devices, phones, e-mails, addresses.

    They build a normal history of small purchases, then max out everything on one bust-out
    day (big purchases, cash, a transfer to the ring's collector).
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "synthetic_identity")
        self.w = w
        country = _country(rnd)
        city = _city(rnd, country)
        self.city = city
        size = _rand(rnd, cfg.synthetic_size)
        self.devices = [
            w.device("phone", country, city.tz, emulator=rnd.random() < 0.25)
            for _ in range(rnd.randint(1, max(1, min(3, size // 2))))
        ]
        self.ips = [w.home_ip(country) for _ in range(rnd.randint(1, 2))] + [w.fraud_ip("hosting")]
        first, last = w.person_name(country)
        emails = [w.email_for(first, last, country) for _ in range(rnd.randint(1, 2))]
        phones = [w.phone_number(country) for _ in range(rnd.randint(1, 2))]
        addresses = [w.street_address(city) for _ in range(rnd.randint(1, 2))]
        self.bust_day = rnd.randint(max(1, int(w.days * 0.6)), max(1, w.days - 1))
        for _ in range(size):
            f, ln = w.person_name(country)
            opened = rnd.randint(0, max(0, w.days // 4)) if rnd.random() < 0.5 else None
            a = w.add_account(
                kind="person",
                bank=BANK_COUNTRIES[country],
                country=country,
                city=city,
                currency=cat.COUNTRY_CURRENCY[country],
                name=f"{f} {ln}",
                first=f,
                last=ln,
                archetype="online",
                rate=0.9,
                spend=0.6,
                synthetic=True,
                opened_day=opened,
            )
            a.email = rnd.choice(emails) if rnd.random() < 0.6 else w.email_for(f, ln, country)
            a.phone = rnd.choice(phones) if rnd.random() < 0.7 else w.phone_number(country)
            a.address = rnd.choice(addresses) if rnd.random() < 0.8 else w.street_address(city)
            a.card_id = w.ids.hex("tok_", 16)
            a.phone_device = rnd.choice(self.devices)
            a.home_device = rnd.choice(self.devices)
            a.home_ip = rnd.choice(self.ips)
            a.mobile_ip = rnd.choice(self.ips)
            a.fav = rnd.getrandbits(30)
            if rnd.random() < 0.3:
                a.wallet_id = w.ids.hex("cus_", 10)
            self.members.append((a, "ring_member"))
        collector = cast.take(1, country)
        self.collector = collector[0] if collector else None
        if self.collector is not None:
            self.members.append((self.collector, "collector"))
        self.bust = cfg.bust_out_txns
        self.buildup = cfg.buildup_rate

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab = self.w, self.label
        city = self.city
        geo = geo_of(city, rnd)
        for a, role in self.members:
            if role != "ring_member":
                continue
            first = a.opened_day if a.opened_day is not None else 0
            dev = a.phone_device
            if a.opened_day is not None:
                ts = w.local_ts(a.tz, first, 10 + 8 * rnd.random())
                em.account_event(a, ts, "opened", device=dev, ip=a.home_ip, label=lab)
                em.device_seen(a, ts + 40, dev, a.home_ip, geo, label=lab)
            for d in range(first, self.bust_day):
                for _ in range(_poisson(rnd, self.buildup)):
                    self._small_purchase(em, rnd, a, d, lab)
                if rnd.random() < 0.4:
                    ts = w.local_ts(a.tz, d, 8 + 14 * rnd.random())
                    em.login(
                        a,
                        ts,
                        via="app",
                        success=True,
                        mfa=False,
                        device=dev,
                        ip=a.mobile_ip,
                        geo=geo,
                        label=lab,
                    )
            self._bust_out(em, rnd, a, lab)

    def _small_purchase(
        self, em: Emitter, rnd: random.Random, a: Account, d: int, lab: Label
    ) -> None:
        w = self.w
        code = rnd.choice(("5411", "5814", "5999", "5818", "5499", "5541"))
        ts = w.local_ts(a.tz, d, 9 + 12 * rnd.random())
        mcc = cat.MCCS[cat.MCC_INDEX[code]]
        amount = _money(rnd, mcc.mu - 0.3, 0.5, a.currency)
        if mcc.online:
            pool = w.online_pools[(a.country, code)]
            em.cnp(
                a,
                ts,
                amount,
                a.currency,
                pool[a.fav % len(pool)],
                device=a.home_device,
                ip=a.home_ip,
                email=a.email,
                phone=a.phone,
                address=a.address,
                label=lab,
            )
        else:
            pool = w.city_pools[(a.city.name, code)]
            m = pool[(a.fav + rnd.randrange(3)) % len(pool)]
            if a.wallet_id and rnd.random() < 0.4:
                em.wallet_payment(
                    a,
                    ts,
                    amount,
                    a.currency,
                    m,
                    device=a.phone_device,
                    ip=a.mobile_ip,
                    geo=m.geo,
                    label=lab,
                )
            else:
                em.card(a, ts, amount, a.currency, m, label=lab)

    def _bust_out(self, em: Emitter, rnd: random.Random, a: Account, lab: Label) -> None:
        w = self.w
        d = self.bust_day
        t = w.local_ts(a.tz, d, 9 + 5 * rnd.random())
        for _ in range(_rand(rnd, self.bust)):
            t += rnd.randint(5 * MINUTE, 50 * MINUTE)
            status = "declined" if rnd.random() < 0.15 else "approved"
            amount = _money(rnd, 6.3, 0.4, a.currency)
            if rnd.random() < 0.5:
                pool = w.online_pools[(a.country, "5999")]
                em.cnp(
                    a,
                    t,
                    amount,
                    a.currency,
                    rnd.choice(pool),
                    device=a.home_device,
                    ip=rnd.choice(self.ips),
                    email=a.email,
                    phone=a.phone,
                    address=a.address,
                    status=status,
                    label=lab,
                )
            else:
                code = rnd.choice(("5732", "5732", "5311", "5651"))
                em.card(
                    a,
                    t,
                    amount,
                    a.currency,
                    rnd.choice(w.city_pools[(a.city.name, code)]),
                    status=status,
                    label=lab,
                )
        cash = {"GBP": 300, "EUR": 400, "USD": 500}.get(a.currency, 400)
        em.atm(
            a,
            t + rnd.randint(HOUR, 3 * HOUR),
            cash,
            a.currency,
            rnd.choice(w.atms[a.city.name]),
            label=lab,
        )
        if self.collector is not None:
            em.transfer(
                a,
                t + rnd.randint(2 * HOUR, 6 * HOUR),
                _money(rnd, 7.0, 0.4, a.currency),
                a.currency,
                self.collector.account_id,
                kind="TRF",
                narrative="loan",
                device=a.phone_device,
                ip=rnd.choice(self.ips),
                label=lab,
            )


# -- 2. mule networks -------------------------------------------------------------------------

_SCAM_NOTES = (
    "invoice 2291",
    "deposit",
    "investment",
    "parcel fee",
    "safe account",
    "holiday booking",
    "car deposit",
    "crypto",
)
_MULE_NOTES = ("rent", "loan", "repayment", "for you", "car", "money back", "thanks")


class MuleNetwork(Ring):
    """Mule network: scam victims pay mules, who pass the money on within hours.

    Fan-in from victims to each mule; fan-out from the mules to second-line accounts (partly
    from the handler's phone, which logs into several mules); those forward to a collector:
    chains A->B->C.
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "mule_network")
        self.w = w
        country = _country(rnd)
        self.mules = cast.take(_rand(rnd, cfg.mules), country)
        self.layers = cast.take(_rand(rnd, cfg.layer_accounts), country)
        self.collector = cast.take(1, country)
        self.victims = {
            m.idx: cast.take(_rand(rnd, cfg.victims_per_mule), country) for m in self.mules
        }
        city = self.mules[0].city if self.mules else _city(rnd, country)
        self.handler = w.device("phone", country, city.tz, emulator=rnd.random() < 0.3)
        self.handler_ips = [w.fraud_ip("hosting"), w.fraud_ip("hosting"), w.home_ip(country)]
        self.members += [(m, "mule") for m in self.mules + self.layers]
        self.members += [(c, "collector") for c in self.collector]
        self.members += [(v, "victim") for vs in self.victims.values() for v in vs]
        cast.mules += [(m, ring_id) for m in self.mules]

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab = self.w, self.label
        if not self.mules or not self.layers or not self.collector:
            return
        n_waves = 1 if w.days < 10 else rnd.randint(2, 3)
        wave_days = sorted(rnd.sample(range(max(1, w.days - 1)), min(n_waves, w.days - 1 or 1)))
        collector = self.collector[0]
        for m in self.mules:
            waves: dict[int, list[Account]] = {}
            for v in self.victims[m.idx]:
                waves.setdefault(rnd.choice(wave_days), []).append(v)
            for d in wave_days:
                received = 0.0
                last = 0
                for v in waves.get(d, []):
                    ts = w.local_ts(v.tz, d, 9 + 10 * rnd.random())
                    for _ in range(2 if rnd.random() < 0.3 else 1):
                        amount = _money(rnd, 6.2 + 0.3 * (v.spend - 1), 0.5, v.currency)
                        ok = em.transfer(
                            v,
                            ts,
                            amount,
                            v.currency,
                            m.account_id,
                            kind="TRF",
                            narrative=rnd.choice(_SCAM_NOTES),
                            device=v.phone_device,
                            ip=v.mobile_ip if rnd.random() < 0.6 else v.home_ip,
                            label=lab,
                        )
                        if ok:
                            received += amount
                            last = max(last, ts)
                        ts += rnd.randint(5 * MINUTE, 40 * MINUTE)
                if received <= 0:
                    continue
                t = last + rnd.randint(HOUR, 5 * HOUR)
                use_handler = rnd.random() < 0.5
                dev = self.handler if use_handler else m.phone_device
                ip = rnd.choice(self.handler_ips) if use_handler else m.mobile_ip
                em.login(
                    m,
                    t - 2 * MINUTE,
                    via="app",
                    success=True,
                    mfa=False,
                    device=dev,
                    ip=ip,
                    geo=geo_of(m.city, rnd),
                    label=lab,
                )
                remaining = round(received * rnd.uniform(0.88, 0.95), 2)
                if rnd.random() < 0.4:
                    cash = min(500, round(remaining * 0.1, -1) or 20)
                    em.atm(
                        m,
                        t + rnd.randint(HOUR, 3 * HOUR),
                        cash,
                        m.currency,
                        rnd.choice(w.atms[m.city.name]),
                        label=lab,
                    )
                    remaining = round(remaining - cash, 2)
                parts = rnd.randint(1, min(3, len(self.layers) + 1))
                for i in range(parts):
                    share = remaining if i == parts - 1 else round(remaining / parts, 2)
                    remaining = round(remaining - share, 2)
                    layer = rnd.choice(self.layers)
                    t += rnd.randint(2 * MINUTE, 30 * MINUTE)
                    if share <= 0:
                        continue
                    em.transfer(
                        m,
                        t,
                        share,
                        m.currency,
                        layer.account_id,
                        kind="TRF",
                        narrative=rnd.choice(_MULE_NOTES),
                        device=dev,
                        ip=ip,
                        label=lab,
                    )
                    t2 = t + rnd.randint(HOUR, 4 * HOUR)
                    fwd = round(share * rnd.uniform(0.9, 0.97), 2)
                    em.transfer(
                        layer,
                        t2,
                        fwd,
                        layer.currency,
                        collector.account_id,
                        kind="TRF",
                        narrative=rnd.choice(_MULE_NOTES),
                        device=self.handler if rnd.random() < 0.6 else layer.phone_device,
                        ip=rnd.choice(self.handler_ips),
                        label=lab,
                    )


# -- 3. round tripping -----------------------------------------------------------------------


class RoundTripping(Ring):
    """Money cycling A->B->C->A in similar amounts (a little is kept at each hop)."""

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "round_tripping")
        self.w = w
        country = _country(rnd)
        self.accts = cast.take(_rand(rnd, cfg.round_trip_size), country)
        self.members += [(a, "ring_member") for a in self.accts]
        self.cycles = _rand(rnd, cfg.round_trip_cycles)

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab = self.w, self.label
        k = len(self.accts)
        if k < 2:
            return
        notes = ("consulting", "invoice", "loan", "services", "fees", "goods")
        for _ in range(self.cycles):
            a0 = self.accts[0]
            last_start = max(1, w.days - 1 - (k * 20) // 24)  # the cycle closes in the window
            t = w.local_ts(a0.tz, rnd.randrange(last_start), 9 + 8 * rnd.random())
            amount = round(_money(rnd, 7.9, 0.5, a0.currency), -1)
            for i in range(k):
                src, dst = self.accts[i], self.accts[(i + 1) % k]
                em.transfer(
                    src,
                    t,
                    amount,
                    src.currency,
                    dst.account_id,
                    kind="TRF",
                    narrative=f"{rnd.choice(notes)} {rnd.randint(100, 9999)}",
                    device=src.home_device or src.phone_device,
                    ip=src.home_ip,
                    origin="online",
                    label=lab,
                )
                t += rnd.randint(2 * HOUR, 20 * HOUR)
                amount = round(amount * (1 - rnd.uniform(0.0, 0.02)), 2)


# -- 4. card testing ----------------------------------------------------------------------------


class CardTesting(Ring):
    """Card testing: bursts of tiny online payments on stolen cards, then spending.

    One tester (one device, a few hosting IPs, throwaway e-mails) tries several cards at one
    or two merchants within minutes, most declined; cards that work are used for purchases.
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "card_testing")
        self.w = w
        self.victims = cast.take(_rand(rnd, cfg.cards_per_tester))
        self.members += [(v, "victim") for v in self.victims]
        country = _country(rnd)
        self.device = w.device(
            "desktop" if rnd.random() < 0.5 else "phone",
            country,
            "UTC",
            emulator=rnd.random() < 0.4,
        )
        self.ips = [w.fraud_ip("hosting") for _ in range(3)]
        self.emails = [w.email_for(*w.person_name("US"), "US", throwaway=True) for _ in range(2)]
        pool = w.online_pools[(country, "5818")]
        self.test_merchants = rnd.sample(pool, min(len(pool), rnd.randint(1, 2)))
        self.cashout = w.online_pools[(country, "5999")]
        self.tests = cfg.tests_per_card
        self.decline = cfg.decline_rate

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab = self.w, self.label
        day = rnd.randrange(max(1, w.days - 1))
        t = w.t0 + day * 86400 + rnd.randint(0, 20 * HOUR)
        for v in self.victims:
            t += rnd.randint(2 * MINUTE, 40 * MINUTE)
            ok_any = False
            addr = v.address if rnd.random() < 0.5 else w.street_address(v.city)
            for _ in range(_rand(rnd, self.tests)):
                t += rnd.randint(8, 90)
                amount = 1.0 if rnd.random() < 0.3 else round(rnd.uniform(0.5, 2.5), 2)
                if CURRENCY_EXPONENTS[v.currency] == 0:
                    amount = 100.0
                status = "declined" if rnd.random() < self.decline else "approved"
                ok_any |= status == "approved"
                em.cnp(
                    v,
                    t,
                    amount,
                    v.currency,
                    rnd.choice(self.test_merchants),
                    device=self.device,
                    ip=rnd.choice(self.ips),
                    email=rnd.choice(self.emails),
                    phone=None,
                    address=addr,
                    status=status,
                    label=lab,
                )
            if ok_any:
                t2 = t + rnd.randint(HOUR, 6 * HOUR)
                for _ in range(rnd.randint(1, 2)):
                    em.cnp(
                        v,
                        t2,
                        _money(rnd, 4.6 + 0.3 * (v.spend - 1), 0.5, v.currency),
                        v.currency,
                        rnd.choice(self.cashout),
                        device=self.device,
                        ip=rnd.choice(self.ips),
                        email=rnd.choice(self.emails),
                        phone=None,
                        address=addr,
                        status="approved" if rnd.random() < 0.7 else "declined",
                        label=lab,
                    )
                    t2 += rnd.randint(5 * MINUTE, HOUR)


# -- 5. account takeover -----------------------------------------------------------------------


class AccountTakeover(Ring):
    """Account takeover: password guessing, reset, new device far away, drained to mules.

    After the reset the crew logs in from a new device, changes the e-mail (and sometimes the
    phone) and drains the account in several transfers to mules.
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "account_takeover")
        self.w = w
        self.victims = cast.take(_rand(rnd, cfg.takeover_victims))
        self.members += [(v, "compromised") for v in self.victims]
        self.base = rnd.choice(cat.FRAUD_CITIES)
        self.devices = [
            w.device("phone", self.base.country, self.base.tz),
            w.device("desktop", self.base.country, self.base.tz, emulator=rnd.random() < 0.3),
        ]
        self.email = w.email_for(*w.person_name("US"), "US", throwaway=True)
        self.phone = w.phone_number(self.base.country)
        if cast.mules and rnd.random() < 0.7:
            self.mules = [m for m, _ in rnd.sample(cast.mules, min(2, len(cast.mules)))]
        else:
            self.mules = cast.take(rnd.randint(1, 2))
            self.members += [(m, "mule") for m in self.mules]
        self.drains = cfg.drains_per_victim

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab = self.w, self.label
        if not self.mules:
            return
        for v in self.victims:
            day = rnd.randrange(max(1, w.days - 1))
            t = w.local_ts(v.tz, day, rnd.choice((2, 3, 4, 10, 14, 20)) + rnd.random())
            dev = rnd.choice(self.devices)
            if rnd.random() < 0.6:
                ip, geo = w.fraud_ip(self.base.country), geo_of(self.base, rnd)
            else:
                dc = w.cities[rnd.choice(("Amsterdam", "Frankfurt am Main"))]
                ip, geo = w.fraud_ip("hosting"), geo_of(dc, rnd, 0.01)
            tf = t - rnd.randint(15 * MINUTE, 40 * MINUTE)
            for _ in range(rnd.randint(1, 3)):
                em.login(
                    v,
                    tf,
                    via="web",
                    success=False,
                    mfa=False,
                    device=dev,
                    ip=ip,
                    geo=geo,
                    reason="bad_password",
                    label=lab,
                )
                tf += rnd.randint(20, 180)
            em.account_event(
                v,
                t - rnd.randint(3 * MINUTE, 10 * MINUTE),
                "password_reset",
                device=dev,
                ip=ip,
                via="auth",
                reset_via=rnd.choice(("email_link", "sms_code")),
                label=lab,
            )
            em.login(
                v, t, via="web", success=True, mfa=False, device=dev, ip=ip, geo=geo, label=lab
            )
            em.login(
                v,
                t + 3 * MINUTE,
                via="app",
                success=True,
                mfa=False,
                device=dev,
                ip=ip,
                geo=geo,
                label=lab,
            )
            em.device_seen(v, t + 4 * MINUTE, dev, ip, geo, label=lab)
            em.account_event(
                v,
                t + 6 * MINUTE,
                "email_changed",
                new_value=self.email,
                device=dev,
                ip=ip,
                label=lab,
            )
            if rnd.random() < 0.5:
                em.account_event(
                    v,
                    t + 8 * MINUTE,
                    "phone_changed",
                    new_value=self.phone,
                    device=dev,
                    ip=ip,
                    label=lab,
                )
            td = t + 15 * MINUTE
            for _ in range(_rand(rnd, self.drains)):
                td += rnd.randint(10 * MINUTE, 90 * MINUTE)
                amount = _money(rnd, 5.6 + 0.4 * (v.spend - 1), 0.5, v.currency)
                em.transfer(
                    v,
                    td,
                    amount,
                    v.currency,
                    rnd.choice(self.mules).account_id,
                    kind="TRF",
                    narrative=rnd.choice(_MULE_NOTES),
                    device=dev,
                    ip=ip,
                    status="declined" if rnd.random() < 0.15 else "approved",
                    origin="online",
                    label=lab,
                )


# -- 6. collusive merchant -----------------------------------------------------------------------


class CollusiveMerchant(Ring):
    """Collusive merchant: the owner runs a ring of cards through the till.

    Repeated round-sum purchases, refunds days later, and 'commission' transfers from the
    owner back to the cardholders. Honest customers shop there too.
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "collusive_merchant")
        self.w = w
        country = _country(rnd)
        self.cards = cast.take(_rand(rnd, cfg.collusive_cards), country)
        city = self.cards[0].city if self.cards else _city(rnd, country)
        code = rnd.choice(("5732", "5651", "5812", "5311"))
        surname = rnd.choice(cat.LAST_NAMES[country])
        label = cat.MCCS[cat.MCC_INDEX[code]].label
        self.merchant: Merchant = w.new_merchant(f"{surname} {label}", code, country, city)
        w.city_pools[(city.name, code)].append(self.merchant)  # honest customers shop there too
        suffix = {"GB": "Ltd", "US": "LLC", "DE": "GmbH", "FR": "SARL", "NL": "B.V.", "ES": "S.L."}[
            country
        ]
        self.owner = w.add_account(
            kind="business",
            bank=BANK_COUNTRIES[country],
            country=country,
            city=city,
            currency=cat.COUNTRY_CURRENCY[country],
            name=f"{surname} {label} {suffix}",
            business_kind="merchant_owner",
        )
        self.owner.phone_device = w.device("desktop", country, city.tz)
        self.owner.home_ip = w.home_ip(country)
        self.members += [(self.owner, "merchant_owner")] + [(c, "ring_member") for c in self.cards]
        self.txns = cfg.collusive_txns
        self.reversal = cfg.reversal_rate

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab, m = self.w, self.label, self.merchant
        fx = cat.FX_PER_EUR[self.owner.currency]
        for c in self.cards:
            spent = 0.0
            for _ in range(_rand(rnd, self.txns)):
                d = rnd.randrange(w.days)
                ts = w.local_ts(c.tz, d, 10 + 9 * rnd.random())
                amount = float(round(rnd.choice((150, 200, 250, 300, 450, 500, 750, 900)) * fx))
                em.card(c, ts, amount, c.currency, m, label=lab)
                spent += amount
                if rnd.random() < self.reversal:
                    ts_r = ts + rnd.randint(1, 3) * 86400 + rnd.randint(0, 4 * HOUR)
                    if em.card(c, ts_r, amount, c.currency, m, status="reversed", label=lab):
                        spent -= amount
            if spent > 0:
                d = rnd.randrange(max(1, w.days))
                ts = w.local_ts(self.owner.tz, d, 11 + 6 * rnd.random())
                em.transfer(
                    self.owner,
                    ts,
                    round(spent * rnd.uniform(0.3, 0.6), 2),
                    self.owner.currency,
                    c.account_id,
                    kind="TRF",
                    narrative=rnd.choice(("COMMISSION", "CASHBACK", "REFUND")),
                    device=self.owner.phone_device,
                    ip=self.owner.home_ip,
                    origin="online",
                    label=lab,
                )


# -- 7. impossible travel --------------------------------------------------------------------------


class ImpossibleTravel(Ring):
    """Impossible travel: cloned cards used far away minutes after a payment at home.

    A skimming gang cashes out in one far-away city (same shops and ATMs for every card);
    some owners' banking app is also logged into from there.
    """

    def __init__(
        self, ring_id: str, w: World, cast: Casting, cfg: FraudConfig, rnd: random.Random
    ) -> None:
        super().__init__(ring_id, "impossible_travel")
        self.w = w
        self.victims = cast.take(_rand(rnd, cfg.travel_victims))
        self.members += [(v, "victim") for v in self.victims]
        self.far = rnd.choice(cat.FRAUD_CITIES)
        self.device = w.device("phone", self.far.country, self.far.tz)
        self.shops = [
            rnd.choice(w.city_pools[(self.far.name, code)]) for code in ("5732", "5411", "5311")
        ]
        self.atms = w.atms[self.far.name]
        self.remote = cfg.remote_txns

    def emit(self, em: Emitter, rnd: random.Random) -> None:  # noqa: D102 - see Ring.emit
        w, lab, far = self.w, self.label, self.far
        cur = cat.COUNTRY_CURRENCY[far.country]
        fx = cat.FX_PER_EUR[cur]
        for v in self.victims:
            d = rnd.randrange(max(1, w.days - 1))
            t = w.local_ts(v.tz, d, 9 + 11 * rnd.random())
            code = rnd.choice(("5411", "5812", "5541"))
            home = w.city_pools[(v.city.name, code)]
            mcc = cat.MCCS[cat.MCC_INDEX[code]]
            em.card(
                v,
                t,
                _money(rnd, mcc.mu, mcc.sigma, v.currency),
                v.currency,
                home[v.fav % len(home)],
            )  # the owner's honest payment at home
            tr = t + rnd.randint(10 * MINUTE, 90 * MINUTE)
            if rnd.random() < 0.5:
                em.login(
                    v,
                    tr - rnd.randint(MINUTE, 5 * MINUTE),
                    via="app",
                    success=True,
                    mfa=False,
                    device=self.device,
                    ip=w.fraud_ip(far.country),
                    geo=geo_of(far, rnd),
                    label=lab,
                )
            for _ in range(_rand(rnd, self.remote)):
                status = "approved" if rnd.random() < 0.75 else "declined"
                if rnd.random() < 0.4:
                    amount = float(round(rnd.uniform(100, 400) * fx, -2 if fx > 50 else 0))
                    em.card(v, tr, amount, cur, rnd.choice(self.atms), status=status, label=lab)
                else:
                    amount = _money(rnd, 5.3, 0.5, cur)
                    em.card(v, tr, amount, cur, rnd.choice(self.shops), status=status, label=lab)
                tr += rnd.randint(3 * MINUTE, 20 * MINUTE)


_KINDS: dict[str, tuple[RingFactory, str]] = {
    "synthetic_identity": (SyntheticIdentity, "synthetic_rings"),
    "mule_network": (MuleNetwork, "mule_networks"),
    "round_tripping": (RoundTripping, "round_trip_rings"),
    "card_testing": (CardTesting, "card_testing_rings"),
    "account_takeover": (AccountTakeover, "takeover_rings"),
    "collusive_merchant": (CollusiveMerchant, "collusive_merchants"),
    "impossible_travel": (ImpossibleTravel, "travel_rings"),
}


def plan_rings(world: World, cfg: FraudConfig, rnd: random.Random) -> list[Ring]:
    """Cast every ring of every typology (before account ids are assigned)."""
    cast = Casting(world, rnd)
    rings: list[Ring] = []
    for cls, knob in _KINDS.values():
        for _ in range(getattr(cfg, knob)):
            ring_id = f"ring_{len(rings) + 1:03d}"
            rings.append(cls(ring_id, world, cast, cfg, rnd))
    return rings


def describe(rings: list[Ring]) -> dict[str, Any]:
    """Rings and members per typology (for the summary)."""
    out: dict[str, Any] = {}
    for r in rings:
        entry = out.setdefault(r.typology, {"rings": 0, "accounts": 0})
        entry["rings"] += 1
        entry["accounts"] += len(r.members)
    return out

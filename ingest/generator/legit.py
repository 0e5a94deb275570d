"""Honest everyday activity, one simulated day at a time.

Per customer and day: card payments (1-5 a day on average, corporate cards many more) in
categories drawn from the customer's archetype, at local hours typical of each category, with
log-normal amounts scaled by income; online purchases through the merchants' gateways; wallet
payments for wallet users; ATM withdrawals; salaries, bills and rent on their day of the month;
transfers to family and friends; invoices to small businesses; supplier payments between
businesses; logins on the app, the web and the wallet (with the odd typo and password reset);
device observations; contact changes; accounts opened and closed; auth-server noise lines.

The bulk (card payments) is drawn with vectorised numpy calls per day; the per-event loop
only assembles records.
"""

from __future__ import annotations

import bisect
import calendar
import random
from datetime import timedelta
from typing import Any

import numpy as np

from ingest.generator import catalog as cat
from ingest.generator.emit import Emitter
from ingest.generator.world import Account, City, World
from ingest.reference import CURRENCY_EXPONENTS

_STATUS = ("approved", "declined", "reversed")
_P2P_NOTES = (
    "dinner",
    "thanks!",
    "rent share",
    "birthday",
    "tickets",
    "groceries",
    "holiday",
    "taxi",
    "drinks",
    "gift",
    "bills",
    "loan back",
)
_ATM_AMOUNTS = {
    "GBP": (20, 40, 50, 100, 150, 200),
    "EUR": (20, 50, 50, 100, 150, 200, 300),
    "USD": (20, 40, 60, 100, 200, 300),
    "JPY": (10000, 20000, 30000, 50000),
    "THB": (1000, 2000, 5000),
    "AED": (200, 500, 1000),
}


def geo_of(city: City, rnd: random.Random, spread: float = 0.04) -> dict[str, Any]:
    """A location near ``city`` (GeoIP-level precision)."""
    return {
        "lat": round(city.lat + rnd.gauss(0, spread), 4),
        "lon": round(city.lon + rnd.gauss(0, spread * 1.5), 4),
        "country": city.country,
    }


class Honest:
    """Generates the honest population's events, day by day.

    Args:
        world: the population.
        em: where events go.
        rng: vector random source.
        rnd: scalar random source.
    """

    def __init__(
        self, world: World, em: Emitter, rng: np.random.Generator, rnd: random.Random
    ) -> None:
        self.w = world
        self.em = em
        self.rng = rng
        self.rnd = rnd
        self.people: list[Account] = [world.accounts[i] for i in world.persons]
        people = self.people
        days = world.days
        arche_names = list(cat.ARCHETYPES)
        self.rate = np.array([a.rate for a in people])
        self.arch = np.array([arche_names.index(a.archetype) for a in people])
        self.spend = np.array([a.spend for a in people])
        self.opened = np.array([-1 if a.opened_day is None else a.opened_day for a in people])
        self.closed = np.array([days + 1 if a.closed_day is None else a.closed_day for a in people])
        tz_names = sorted({a.tz for a in people} | {c.tz for c in cat.TRAVEL_CITIES})
        tz_index = {t: i for i, t in enumerate(tz_names)}
        self.mid = np.array([world.midnights(t) for t in tz_names], dtype=np.int64)
        self.tz = np.array([tz_index[a.tz] for a in people])
        self.trip_s = np.array([a.trip[0] if a.trip else -1 for a in people])
        self.trip_e = np.array([a.trip[1] if a.trip else -1 for a in people])
        self.trip_tz = np.array([tz_index[a.trip[2].tz] if a.trip else 0 for a in people])
        m = len(cat.MCCS)
        weights = np.zeros((len(arche_names), m))
        for i, name in enumerate(arche_names):
            for code, wt in cat.ARCHETYPES[name].items():
                weights[i, cat.MCC_INDEX[code]] = wt
        weights += 0.15
        self.mcc_cum = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
        profiles = list(cat.HOUR_PROFILES)
        hours = np.array([cat.HOUR_PROFILES[p] for p in profiles])
        self.hour_cum = np.cumsum(hours / hours.sum(1, keepdims=True), axis=1)
        self.mcc_hours = np.array([profiles.index(mc.hours) for mc in cat.MCCS])
        self.mu = np.array([mc.mu for mc in cat.MCCS])
        self.sigma = np.array([mc.sigma for mc in cat.MCCS])
        self.online = [mc.online for mc in cat.MCCS]
        self.codes = [mc.code for mc in cat.MCCS]
        self.home_geo = [geo_of(a.city, rnd) for a in people]
        self.trip_geo = [geo_of(a.trip[2], rnd) if a.trip else None for a in people]
        self.late_list = self.hour_cum[profiles.index("late")].tolist()
        self.evening_list = self.hour_cum[profiles.index("evening")].tolist()

    # -- helpers -----------------------------------------------------------------------------

    def _active(self, d: int) -> np.ndarray:
        return (self.opened <= d) & (self.closed > d)

    def _hour(self, cum: list[float]) -> float:
        """A fractional local hour drawn from a cumulative hour profile."""
        rnd = self.rnd
        return min(23.999, bisect.bisect(cum, rnd.random()) + rnd.random())

    def _traveling(self, k: int, d: int) -> bool:
        return bool(self.trip_s[k] <= d < self.trip_e[k])

    def _where(self, k: int, d: int) -> tuple[City, dict[str, Any]]:
        a = self.people[k]
        if self._traveling(k, d):
            return a.trip[2], self.trip_geo[k]  # type: ignore[index,return-value]
        return a.city, self.home_geo[k]

    # -- the day ------------------------------------------------------------------------------

    def day(self, d: int) -> None:
        """Emit every honest event of window day ``d`` (local days of the customers)."""
        self._spend(d)
        self._transfers(d)
        self._logins(d)
        self._account_changes(d)
        self._noise(d)

    def _spend(self, d: int) -> None:
        rng, em, w = self.rng, self.em, self.w
        weekday = (self.w.start + timedelta(days=d)).weekday()
        factor = 1.12 if weekday >= 5 else 0.97
        active = self._active(d)
        counts = rng.poisson(self.rate * factor) * active
        ci = np.repeat(np.arange(len(self.people)), counts)
        n = ci.size
        u = rng.random((5, n))
        mcc = (self.mcc_cum[self.arch[ci]] < u[0][:, None]).sum(1).clip(0, len(cat.MCCS) - 1)
        hour = (self.hour_cum[self.mcc_hours[mcc]] < u[1][:, None]).sum(1).clip(0, 23)
        sec = hour * 3600 + (u[2] * 3600).astype(np.int64)
        online = np.array(self.online)[mcc]
        trav = (self.trip_s[ci] <= d) & (d < self.trip_e[ci]) & ~online
        tzi = np.where(trav, self.trip_tz[ci], self.tz[ci])
        ts = self.mid[tzi, d + 1] + sec
        eur = np.exp(self.mu[mcc] + self.sigma[mcc] * rng.standard_normal(n)) * self.spend[ci]
        eur = np.maximum(eur, 0.5)
        status = np.where(u[3] < 0.022, 1, np.where(u[3] < 0.025, 2, 0))
        r = rng.integers(0, 1 << 30, n)
        picks = u[4]
        people, codes, online_l = self.people, self.codes, self.online
        city_pools, online_pools = w.city_pools, w.online_pools
        fx, exps = cat.FX_PER_EUR, CURRENCY_EXPONENTS
        rnd = self.rnd
        for k, mi, t, amount_eur, st, rr, pk, tr in zip(
            ci.tolist(),
            mcc.tolist(),
            ts.tolist(),
            eur.tolist(),
            status.tolist(),
            r.tolist(),
            picks.tolist(),
            trav.tolist(),
            strict=True,
        ):
            a = people[k]
            code = codes[mi]
            if online_l[mi]:
                pool = online_pools[(a.country, code)]
                cur = a.currency
            else:
                city = a.trip[2] if tr else a.city  # type: ignore[index]
                pool = city_pools[(city.name, code)]
                cur = cat.COUNTRY_CURRENCY[city.country] if tr else a.currency
            if pk < 0.7:
                m = pool[(a.fav + mi * 7 + (rr % 3) * 13) % len(pool)]
            else:
                m = pool[int(len(pool) * ((rr & 0xFFFF) / 65536.0) ** 2)]
            amount = round(amount_eur * fx[cur], exps[cur])
            if exps[cur] == 0:
                amount = max(1, int(amount))
            status_s = _STATUS[st]
            if online_l[mi]:
                x = (rr >> 16) & 0xFF
                dev = a.phone_device if x < 140 or a.home_device is None else a.home_device
                if x % 20 == 0:
                    ip = rnd.choice(w.wifi_ips[a.city.name])
                elif dev is a.phone_device and x % 3 == 0:
                    ip = a.mobile_ip
                else:
                    ip = a.home_ip
                em.cnp(
                    a,
                    t,
                    amount,
                    cur,
                    m,
                    device=dev,
                    ip=ip,
                    email=a.email,
                    phone=a.phone if x % 5 else None,
                    address=a.address,
                    status=status_s,
                )
            elif a.wallet_id is not None and (rr >> 24) % 100 < 35:
                em.wallet_payment(
                    a,
                    t,
                    amount,
                    cur,
                    m,
                    device=a.phone_device,
                    ip=a.mobile_ip if not tr else rnd.choice(w.wifi_ips[a.trip[2].name]),  # type: ignore[index]
                    geo=m.geo,
                    status=status_s,
                )
            else:
                em.card(a, t, amount, cur, m, status=status_s)

    def _transfers(self, d: int) -> None:
        w, em, rnd, rng = self.w, self.em, self.rnd, self.rng
        today = w.start + timedelta(days=d)
        dom, month_len = today.day, calendar.monthrange(today.year, today.month)[1]
        accts = w.accounts
        active = self._active(d)
        for k, a in enumerate(self.people):
            if not active[k]:
                continue
            if a.employer is not None and min(a.salary_day, month_len) == dom:
                emp = accts[a.employer]
                ts = w.local_ts(emp.tz, d, 5 + 2 * rnd.random())
                amount = round(a.income * rnd.uniform(0.97, 1.03), 2)
                narr = "PENSION" if emp.business_kind == "pension" else "SALARY"
                em.transfer(
                    emp,
                    ts,
                    amount,
                    a.currency,
                    a.account_id,
                    kind="SAL",
                    narrative=f"{narr} {emp.name.upper()[:24]}",
                    origin="batch",
                )
            for payee, bill_dom, amount, narr in a.bills:
                if min(bill_dom, month_len) == dom:
                    ts = w.local_ts(a.tz, d, 3 + 3 * rnd.random())
                    if narr == "ENERGY DD":
                        amount = round(amount * rnd.uniform(0.8, 1.2), 2)
                    em.transfer(
                        a,
                        ts,
                        amount,
                        a.currency,
                        accts[payee].account_id,
                        kind="SO" if narr == "RENT SO" else "DD",
                        narrative=narr,
                        origin="batch",
                    )
        # P2P, invoices, ATM: Poisson counts for everyone at once.
        n = len(self.people)
        p2p = rng.poisson(1.8 / 30, n) * active
        inv = rng.poisson(0.4 / 30, n) * active
        atm = rng.poisson(0.09, n) * active
        small = w.businesses["small_business"]
        for k in np.flatnonzero(p2p).tolist():
            a = self.people[k]
            city, _ = self._where(k, d)
            for _ in range(int(p2p[k])):
                pool = a.family if a.family and rnd.random() < 0.4 else a.friends
                if not pool:
                    continue
                to = accts[rnd.choice(pool)]
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                amount = round(
                    float(np.exp(rng.normal(3.6, 0.8))) * a.spend * cat.FX_PER_EUR[a.currency], 2
                )
                on_phone = rnd.random() < 0.8
                em.transfer(
                    a,
                    ts,
                    max(amount, 1.0),
                    a.currency,
                    to.account_id,
                    kind="TRF",
                    narrative=rnd.choice(_P2P_NOTES),
                    device=a.phone_device if on_phone else a.home_device,
                    ip=a.mobile_ip if on_phone and rnd.random() < 0.5 else a.home_ip,
                    origin="mobile" if on_phone else "online",
                )
        for k in np.flatnonzero(inv).tolist():
            a = self.people[k]
            biz = accts[rnd.choice(small)]
            ts = w.local_ts(a.tz, d, 9 + 12 * rnd.random())
            amount = round(float(np.exp(rng.normal(4.4, 0.6))) * cat.FX_PER_EUR[a.currency], 2)
            em.transfer(
                a,
                ts,
                amount,
                a.currency,
                biz.account_id,
                kind="INV",
                narrative=f"INV-{rnd.randint(1000, 99999)}",
                device=a.home_device or a.phone_device,
                ip=a.home_ip,
                origin="online",
            )
        for k in np.flatnonzero(atm).tolist():
            a = self.people[k]
            city, _ = self._where(k, d)
            cur = cat.COUNTRY_CURRENCY[city.country]
            choices = _ATM_AMOUNTS.get(cur, (50, 100, 200))
            ts = w.local_ts(city.tz, d, self._hour(self.late_list))
            status = "declined" if rnd.random() < 0.02 else "approved"
            em.atm(a, ts, rnd.choice(choices), cur, rnd.choice(w.atms[city.name]), status=status)
        # Businesses pay each other (suppliers, services): heavy, honest fan-in and fan-out.
        firms = [
            i
            for kind in ("employer", "small_business", "landlord", "utility")
            for i in w.businesses.get(kind, [])
        ]
        for b in firms:
            a = accts[b]
            for _ in range(int(rng.poisson(0.6))):
                to = accts[rnd.choice(firms)]
                if to is a:
                    continue
                ts = w.local_ts(a.tz, d, 8 + 10 * rnd.random())
                amount = round(float(np.exp(rng.normal(6.8, 1.0))) * cat.FX_PER_EUR[a.currency], 2)
                em.transfer(
                    a,
                    ts,
                    amount,
                    a.currency,
                    to.account_id,
                    kind="INV",
                    narrative=f"SUPPLIER INV {rnd.randint(10000, 999999)}",
                    device=a.phone_device,
                    ip=a.home_ip,
                    origin="online",
                )

    def _logins(self, d: int) -> None:
        w, em, rnd, rng = self.w, self.em, self.rnd, self.rng
        n = len(self.people)
        active = self._active(d)
        app = rng.poisson(0.42, n) * active
        web = rng.poisson(0.08, n) * active
        dev_ev = rng.poisson(0.07, n) * active
        is_wallet = np.array([a.wallet_id is not None for a in self.people])
        wal = rng.poisson(0.35, n) * active * is_wallet
        wal_dev = rng.poisson(0.05, n) * active * is_wallet
        for k in np.flatnonzero(app + web + dev_ev + wal + wal_dev).tolist():
            a = self.people[k]
            city, geo = self._where(k, d)
            away = city is not a.city
            for _ in range(int(app[k])):
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                if away:
                    ip = a.mobile_ip if rnd.random() < 0.5 else rnd.choice(w.wifi_ips[city.name])
                else:
                    x = rnd.random()
                    ip = (
                        a.mobile_ip
                        if x < 0.5
                        else a.home_ip
                        if x < 0.92
                        else rnd.choice(w.wifi_ips[city.name])
                    )
                if a.bank == "bank_meridian" and rnd.random() < 0.02:
                    ip = f"192.168.{rnd.randint(0, 3)}.{rnd.randint(2, 250)}"
                ok = rnd.random() > 0.03
                em.login(
                    a,
                    ts,
                    via="app",
                    success=ok,
                    mfa=rnd.random() < 0.25,
                    device=a.phone_device,
                    ip=ip,
                    geo=geo,
                    reason=None if ok else rnd.choice(("wrong_pin", "biometric_failed")),
                )
            for _ in range(int(web[k])):
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                dev = a.home_device if a.home_device is not None and not away else a.phone_device
                ip = a.home_ip if not away else rnd.choice(w.wifi_ips[city.name])
                mfa = rnd.random() < 0.5
                x = rnd.random()
                if x < 0.05:
                    em.login(
                        a,
                        ts - rnd.randint(20, 90),
                        via="web",
                        success=False,
                        mfa=False,
                        device=dev,
                        ip=ip,
                        geo=geo,
                        reason="bad_password",
                    )
                if mfa and x > 0.99:
                    em.login(
                        a,
                        ts - rnd.randint(30, 120),
                        via="web",
                        success=False,
                        mfa=True,
                        device=dev,
                        ip=ip,
                        geo=geo,
                        reason="mfa_failed",
                    )
                em.login(a, ts, via="web", success=True, mfa=mfa, device=dev, ip=ip, geo=geo)
                if rnd.random() < 0.04:
                    em.noise(
                        ts + 1800 + rnd.randint(0, 60),
                        f"SESSION_EXPIRED sid={rnd.getrandbits(40):010x} "
                        f"user={a.account_id} idle_s=1800",
                        "us" if a.country == "US" else "eu",
                    )
            for _ in range(int(dev_ev[k])):
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                em.device_seen(a, ts, a.phone_device, a.mobile_ip, geo)
            for _ in range(int(wal[k])):
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                ok = rnd.random() > 0.02
                em.login(
                    a,
                    ts,
                    via="wallet",
                    success=ok,
                    mfa=rnd.random() < 0.15,
                    device=a.phone_device,
                    ip=a.mobile_ip,
                    geo=geo,
                    reason=None if ok else "wrong_passcode",
                    user_agent=f"Pocketa/4.{(a.idx % 9) + 1}.0 ({a.phone_device.os})"
                    if a.phone_device
                    else None,
                )
            for _ in range(int(wal_dev[k])):
                ts = w.local_ts(city.tz, d, self._hour(self.evening_list))
                em.device_seen(
                    a,
                    ts,
                    a.phone_device,
                    a.mobile_ip,
                    geo,
                    via="wallet",
                )

    def _account_changes(self, d: int) -> None:
        w, em, rnd = self.w, self.em, self.rnd
        for k, a in enumerate(self.people):
            if a.opened_day == d:
                ts = w.local_ts(a.tz, d, 9 + 10 * rnd.random())
                dev = a.phone_device
                em.account_event(a, ts, "opened", device=dev, ip=a.home_ip)
                if dev is not None:
                    em.device_seen(a, ts + 30, dev, a.home_ip, self.home_geo[k])
                continue
            if a.closed_day == d:
                em.account_event(
                    a,
                    w.local_ts(a.tz, d, 10 + 6 * rnd.random()),
                    "closed",
                    device=a.home_device or a.phone_device,
                    ip=a.home_ip,
                )
                continue
            if not (self.opened[k] <= d < self.closed[k]):
                continue
            x = rnd.random()
            if x >= 0.0025:
                continue
            ts = w.local_ts(a.tz, d, 8 + 14 * rnd.random())
            dev = a.home_device or a.phone_device
            if x < 0.0006:
                a.email = w.email_for(a.first, a.last, a.country)
                em.account_event(
                    a, ts, "email_changed", new_value=a.email, device=dev, ip=a.home_ip
                )
            elif x < 0.0010:
                a.phone = w.phone_number(a.country)
                em.account_event(
                    a, ts, "phone_changed", new_value=a.phone, device=dev, ip=a.home_ip
                )
            elif x < 0.0013:
                a.address = w.street_address(a.city)
                em.account_event(
                    a, ts, "address_changed", new_value=a.address, device=dev, ip=a.home_ip
                )
            else:
                geo = self.home_geo[k]
                for before in (200, 120):  # two wrong passwords, then the reset
                    em.login(
                        a,
                        ts - before,
                        via="web",
                        success=False,
                        mfa=False,
                        device=dev,
                        ip=a.home_ip,
                        geo=geo,
                        reason="bad_password",
                    )
                em.account_event(
                    a,
                    ts,
                    "password_reset",
                    device=dev,
                    ip=a.home_ip,
                    via="auth",
                    reset_via=rnd.choice(("email_link", "sms_code")),
                )
                em.login(
                    a,
                    ts + 150,
                    via="web",
                    success=True,
                    mfa=True,
                    device=dev,
                    ip=a.home_ip,
                    geo=geo,
                )

    def _noise(self, d: int) -> None:
        w, em, rnd = self.w, self.em, self.rnd
        base = w.t0 + d * 86400
        n = len(self.people)
        for _ in range(max(1, round(n * 0.003))):
            em.noise(
                base + rnd.randint(0, 86399),
                f"healthcheck ok latency_ms={rnd.randint(1, 9)}",
                "us" if rnd.random() < 0.2 else "eu",
            )
        if d % 7 == 3:
            em.noise(base + rnd.randint(3600, 7200), f"config reloaded (rev {4000 + d})")
        if rnd.random() < n / 10_000:
            em.noise(
                base + rnd.randint(0, 86399),
                f"ratelimit: {rnd.randint(3, 40)} clients throttled for 60s",
            )

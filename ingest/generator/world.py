"""The simulated population: customers, households, businesses, merchants, devices, IPs.

:func:`build_world` creates everyone who exists before the first simulated day (and the honest
accounts that will be opened during it). Fraud typologies add their own accounts afterwards
(:meth:`World.add_account`), and :meth:`World.assign_ids` then numbers all accounts: accounts that
existed before the window get shuffled numbers, accounts opened during it get the next numbers in
opening order (so, as in a real bank, a new account has a high number whether honest or not).

Everything is drawn from one seeded :class:`random.Random` and one :class:`numpy.random.Generator`,
in a fixed order, so a world is a pure function of its seed and arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ingest.generator import catalog as cat
from ingest.generator.catalog import City

BANK_COUNTRIES: dict[str, str] = {
    "GB": "bank_alba",
    "DE": "bank_rhein",
    "NL": "bank_rhein",
    "FR": "bank_meridian",
    "ES": "bank_meridian",
    "US": "bank_liberty",
}
"""Each home country's main bank (a share of customers bank elsewhere)."""

BANK_IDS: tuple[str, ...] = ("bank_alba", "bank_rhein", "bank_meridian", "bank_liberty")

GATEWAY_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "GB": (("gw_paynova", 0.7), ("gw_kassa", 0.2), ("gw_orbit", 0.1)),
    "US": (("gw_orbit", 0.7), ("gw_paynova", 0.3)),
    "*": (("gw_kassa", 0.5), ("gw_paynova", 0.3), ("gw_orbit", 0.2)),
}
"""Which payment gateway an online merchant of a country uses."""

_DENSITY = {
    "5411": 60,
    "5499": 50,
    "5541": 120,
    "5812": 25,
    "5814": 40,
    "5912": 150,
    "5311": 300,
    "5651": 120,
    "4111": 400,
    "5732": 250,
}
"""Customers per in-person merchant of each category, per city (at least 2 merchants)."""


@dataclass(slots=True)
class Device:
    """A device fingerprint: a phone, a computer or a tablet (possibly shared by a household)."""

    device_id: str
    kind: str
    os: str
    os_version: str
    model: str
    browser: str
    screen: str
    timezone: str
    language: str
    user_agent: str
    emulator: bool = False
    rooted: bool = False


@dataclass(slots=True)
class Merchant:
    """A merchant (or an ATM, MCC 6011) customers pay at.

    Args:
        merchant_id: the id sources report.
        name: display name (some sources send it as an extra column).
        mcc: merchant category code.
        country: the merchant's country.
        city: city name (empty for online merchants).
        geo: ``{lat, lon, country}`` of the shop, shared by all its card-present payments.
        gateway: the gateway an online merchant uses, else None.
    """

    merchant_id: str
    name: str
    mcc: str
    country: str
    city: str
    geo: dict[str, object] | None
    gateway: str | None = None


@dataclass(slots=True, eq=False)
class Account:
    """A bank account and the person or business that holds it.

    Most attributes matter only to persons; businesses leave them at their defaults.
    """

    idx: int
    kind: str
    bank: str
    country: str
    city: City
    currency: str
    name: str
    first: str = ""
    last: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    account_id: str = ""
    card_id: str | None = None
    phone_device: Device | None = None
    home_device: Device | None = None
    home_ip: str = ""
    mobile_ip: str = ""
    household: int = -1
    archetype: str = "commuter"
    rate: float = 0.0
    spend: float = 1.0
    income: float = 0.0
    employer: int | None = None
    salary_day: int = 28
    bills: list[tuple[int, int, float, str]] = field(default_factory=list)
    friends: list[int] = field(default_factory=list)
    family: list[int] = field(default_factory=list)
    wallet_id: str | None = None
    opened_day: int | None = None
    closed_day: int | None = None
    synthetic: bool = False
    trip: tuple[int, int, City] | None = None
    fav: int = 0
    business_kind: str = ""

    @property
    def tz(self) -> str:
        """The account holder's home time zone."""
        return self.city.tz


class Ids:
    """Unique random hexadecimal ids with a prefix (``dev_3fa9c2...``), drawn from ``rnd``."""

    def __init__(self, rnd: random.Random) -> None:
        self._rnd = rnd
        self._seen: set[str] = set()

    def hex(self, prefix: str, digits: int) -> str:
        """A new id ``prefix`` + ``digits`` lowercase hex digits, never returned before."""
        while True:
            value = f"{prefix}{self._rnd.getrandbits(digits * 4):0{digits}x}"
            if value not in self._seen:
                self._seen.add(value)
                return value


@dataclass(slots=True)
class World:
    """Everyone and everything the simulation needs, plus time-zone tables.

    Args:
        start: first simulated day (UTC).
        days: number of simulated days.
        t0: UTC epoch seconds of ``start`` 00:00.
        accounts: every account, indexed by ``Account.idx``.
        persons: indices of personal and corporate-card accounts with everyday activity.
        businesses: indices of business accounts, by business kind.
        city_pools: in-person merchants per (city name, MCC).
        online_pools: online merchants per (customer country, MCC).
        atms: ATMs per city name.
        wifi_ips: public Wi-Fi addresses (cafés, stations, airports) per city name.
        mobile_pools: mobile carrier NAT addresses per country.
        cities: every city by name (home, travel and fraud cities).
    """

    start: date
    days: int
    t0: int
    rnd: random.Random
    ids: Ids
    accounts: list[Account] = field(default_factory=list)
    persons: list[int] = field(default_factory=list)
    businesses: dict[str, list[int]] = field(default_factory=dict)
    city_pools: dict[tuple[str, str], list[Merchant]] = field(default_factory=dict)
    online_pools: dict[tuple[str, str], list[Merchant]] = field(default_factory=dict)
    atms: dict[str, list[Merchant]] = field(default_factory=dict)
    wifi_ips: dict[str, list[str]] = field(default_factory=dict)
    mobile_pools: dict[str, list[str]] = field(default_factory=dict)
    cities: dict[str, City] = field(default_factory=dict)
    merchant_count: int = 0
    _tz_cache: dict[str, ZoneInfo] = field(default_factory=dict)
    _midnights: dict[str, list[int]] = field(default_factory=dict)

    # -- time --------------------------------------------------------------------------------

    def zone(self, name: str) -> ZoneInfo:
        """The ZoneInfo for ``name`` (cached)."""
        z = self._tz_cache.get(name)
        if z is None:
            z = self._tz_cache[name] = ZoneInfo(name)
        return z

    def midnights(self, tz: str) -> list[int]:
        """UTC epoch seconds of local midnight for days -1 .. days (index 0 is day -1).

        The offset of local noon is used for the whole day, so the two DST change nights are
        off by an hour between midnight and 3 am; harmless for a simulation.
        """
        got = self._midnights.get(tz)
        if got is None:
            zone = self.zone(tz)
            got = []
            for d in range(-1, self.days + 1):
                day = self.start + timedelta(days=d)
                noon = datetime.combine(day, time(12), tzinfo=zone)
                offset = int(noon.utcoffset().total_seconds())  # type: ignore[union-attr]
                midnight = int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())
                got.append(midnight - offset)
            self._midnights[tz] = got
        return got

    def local_ts(self, tz: str, day: int, hour: float) -> int:
        """UTC epoch seconds of ``hour`` (fractional) local time on window day ``day``."""
        return self.midnights(tz)[day + 1] + int(hour * 3600)

    def clamp(self, ts: int) -> int:
        """Keep a timestamp inside the simulated window."""
        return max(self.t0 + 1, min(self.t0 + self.days * 86400 - 1, ts))

    # -- people and places ---------------------------------------------------------------------

    def add_account(self, **kwargs: object) -> Account:
        """Create an account (its ``account_id`` is assigned later by :meth:`assign_ids`)."""
        acct = Account(idx=len(self.accounts), **kwargs)  # type: ignore[arg-type]
        self.accounts.append(acct)
        return acct

    def assign_ids(self) -> None:
        """Number every account: older accounts shuffled, accounts opened in the window after."""
        old = [a for a in self.accounts if a.opened_day is None]
        new = sorted(
            (a for a in self.accounts if a.opened_day is not None),
            key=lambda a: (a.opened_day, a.idx),
        )
        numbers = list(range(1, len(old) + 1))
        self.rnd.shuffle(numbers)
        for acct, n in zip(old, numbers, strict=True):
            acct.account_id = f"acc_{n:06d}"
        for n, acct in enumerate(new, len(old) + 1):
            acct.account_id = f"acc_{n:06d}"

    def new_merchant(
        self,
        name: str,
        mcc: str,
        country: str,
        city: City | None,
        gateway: str | None = None,
        prefix: str = "mch_",
    ) -> Merchant:
        """Create a merchant; in-person merchants get a location jittered around their city."""
        self.merchant_count += 1
        geo = None
        if city is not None:
            geo = {
                "lat": round(city.lat + self.rnd.gauss(0, 0.03), 5),
                "lon": round(city.lon + self.rnd.gauss(0, 0.045), 5),
                "country": country,
            }
        mid = (
            f"{prefix}{self.merchant_count:06d}"
            if prefix == "mch_"
            else f"{prefix}{country}{self.merchant_count:06d}"
        )
        return Merchant(mid, name, mcc, country, city.name if city else "", geo, gateway)

    def device(
        self, kind: str, country: str, tz: str, *, emulator: bool = False, rooted: bool = False
    ) -> Device:
        """A new device with a consistent OS, model, screen and user agent."""
        rnd = self.rnd
        chrome = rnd.choice(cat.CHROME_VERSIONS)
        versions: tuple[str, ...]
        if emulator:
            os_name, versions, model, screen = cat.EMULATOR_MODEL
            browser = "Chrome"
        elif kind == "phone":
            os_name, versions, model, screen = rnd.choice(cat.PHONE_MODELS)
            browser = "Safari" if os_name == "iOS" else "Chrome"
        else:
            os_name, versions, browser, screen = rnd.choice(cat.DESKTOP_MODELS)
            model = "iPad" if os_name == "iPadOS" else ""
        version = rnd.choice(versions)
        ua = cat.browser_user_agent(os_name, version, browser, model, chrome)
        return Device(
            self.ids.hex("dev_", 12),
            kind,
            os_name,
            version,
            model,
            browser,
            screen,
            tz,
            cat.LANGUAGES.get(country, "en-US"),
            ua,
            emulator,
            rooted,
        )

    def ipv4(self, prefix: str) -> str:
        """A random host address under a /16 (``a.b``) or /24 (``a.b.c``) prefix."""
        rnd = self.rnd
        if prefix.count(".") == 2:
            return f"{prefix}.{rnd.randint(2, 254)}"
        return f"{prefix}.{rnd.randint(0, 255)}.{rnd.randint(2, 254)}"

    def home_ip(self, country: str) -> str:
        """A residential address: IPv4 from the country's ISPs, or IPv6 for about 15%."""
        rnd = self.rnd
        v6 = cat.IPV6_PREFIXES.get(country)
        if v6 is not None and rnd.random() < 0.15:
            if rnd.random() < 0.1:
                v6 = "2001:db8"
            return f"{v6}:{rnd.getrandbits(16):x}:{rnd.getrandbits(16):x}::{rnd.getrandbits(16):x}"
        return self.ipv4(rnd.choice(cat.ISP_PREFIXES[country]))

    def fraud_ip(self, where: str) -> str:
        """An address a fraudster uses: ``hosting`` (VPN/cloud) or a far-away country code."""
        return self.ipv4(self.rnd.choice(cat.FRAUD_IP_PREFIXES[where]))

    def phone_number(self, country: str) -> str:
        """A random E.164 mobile number in ``country``."""
        prefix, digits = cat.PHONE_FORMATS[country]
        rnd = self.rnd
        if country == "US":
            area = rnd.choice((212, 646, 312, 213, 310, 713, 617, 415))
            return f"+1{area}{rnd.randint(2, 9)}{rnd.randint(0, 10**6 - 1):06d}"
        return f"{prefix}{rnd.randint(10 ** (digits - 1), 10**digits - 1)}"

    def postcode(self, city: City) -> str:
        """A postcode for ``city`` from its template."""
        rnd = self.rnd
        out = []
        for ch in city.postcode:
            if ch == "#":
                out.append(str(rnd.randint(0, 9)))
            elif ch == "A":
                out.append(chr(rnd.randint(65, 90)))
            else:
                out.append(ch)
        return "".join(out)

    def street_address(self, city: City) -> str:
        """A one-line postal address in ``city``, in the country's usual order."""
        rnd = self.rnd
        c = city.country
        street = rnd.choice(cat.STREETS.get(c, cat.STREETS["GB"]))
        n = rnd.randint(1, 180)
        pc = self.postcode(city)
        if c in ("GB",):
            return f"{n} {street}, {city.name} {pc}"
        if c == "US":
            state, zipcode = pc.split(" ")
            return f"{n} {street}, {city.name}, {state} {zipcode}"
        if c == "FR":
            return f"{n} {street}, {pc} {city.name}"
        return f"{street} {n}, {pc} {city.name}"

    def email_for(self, first: str, last: str, country: str, throwaway: bool = False) -> str:
        """An e-mail address built from a name, in one of a few common styles."""
        rnd = self.rnd
        f, ln = cat.ascii_fold(first) or "user", cat.ascii_fold(last) or "mail"
        style = rnd.random()
        if style < 0.35:
            local = f"{f}.{ln}"
        elif style < 0.6:
            local = f"{f[0]}{ln}{rnd.randint(1, 99)}"
        elif style < 0.8:
            local = f"{f}{ln}{rnd.randint(1960, 2006)}"
        else:
            local = f"{f}_{ln[:4]}{rnd.randint(1, 999)}"
        domains = (
            cat.THROWAWAY_DOMAINS
            if throwaway
            else cat.EMAIL_DOMAINS.get(country, cat.EMAIL_DOMAINS["US"])
        )
        return f"{local}@{rnd.choice(domains)}"

    def person_name(self, country: str) -> tuple[str, str]:
        """A first and last name typical of ``country``."""
        key = country if country in cat.FIRST_NAMES else "US"
        return self.rnd.choice(cat.FIRST_NAMES[key]), self.rnd.choice(cat.LAST_NAMES[key])


def _weighted(rnd: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rnd.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def build_world(
    *, start: date, days: int, accounts: int, rnd: random.Random, rng: np.random.Generator
) -> World:
    """Create the honest population of ``accounts`` accounts (persons and businesses).

    Args:
        start: first simulated day.
        days: number of days simulated.
        accounts: number of honest accounts to create (fraud typologies add a few more).
        rnd: scalar random source (names, ids, choices).
        rng: vector random source (rates, incomes).
    """
    t0 = int(datetime.combine(start, time(0), tzinfo=UTC).timestamp())
    w = World(start=start, days=days, t0=t0, rnd=rnd, ids=Ids(rnd))
    for c in (*cat.CITIES, *cat.TRAVEL_CITIES, *cat.FRAUD_CITIES):
        w.cities.setdefault(c.name, c)
    scale = accounts / 10_000

    # Businesses first: employers, utilities, landlords, small firms, pension funds.
    n_business = max(12, round(accounts * 0.025))
    kinds = [
        ("utility", max(6, round(12 * scale))),
        ("telecom", 6),
        ("insurer", 6),
        ("pension", 6),
        ("landlord", max(2, round(80 * scale))),
        ("small_business", max(2, round(40 * scale))),
    ]
    n_fixed = sum(n for _, n in kinds)
    kinds.insert(0, ("employer", max(3, n_business - n_fixed)))
    home_weights = list(cat.HOME_WEIGHTS)
    suffix = {"GB": "Ltd", "US": "Inc", "DE": "GmbH", "FR": "SAS", "NL": "B.V.", "ES": "S.L."}
    labels = {
        "employer": (
            "Logistics",
            "Software",
            "Foods",
            "Engineering",
            "Retail",
            "Health",
            "Consulting",
            "Media",
            "Construction",
            "Hospitality",
        ),
        "utility": ("Energy", "Water", "Power"),
        "telecom": ("Mobile",),
        "insurer": ("Insurance",),
        "pension": ("Pension Fund",),
        "landlord": ("Lettings", "Property", "Estates", "Homes"),
        "small_business": (
            "Plumbing",
            "Fitness Club",
            "Driving School",
            "Dental",
            "Tutoring",
            "Garage",
        ),
    }
    surnames = [n for names in cat.LAST_NAMES.values() for n in names]
    per_country_fixed = {"telecom", "insurer", "pension"}
    for kind, count in kinds:
        idxs: list[int] = []
        for i in range(count):
            if kind in per_country_fixed or kind == "utility":
                country = cat.HOME_COUNTRIES[i % len(cat.HOME_COUNTRIES)]
            else:
                country = rnd.choices(cat.HOME_COUNTRIES, weights=home_weights)[0]
            cities = [c for c in cat.CITIES if c.country == country]
            city = rnd.choices(cities, weights=[c.weight for c in cities])[0]
            name = f"{rnd.choice(surnames)} {rnd.choice(labels[kind])} {suffix[country]}"
            acct = w.add_account(
                kind="business",
                bank=BANK_COUNTRIES[country],
                country=country,
                city=city,
                currency=cat.COUNTRY_CURRENCY[country],
                name=name,
                business_kind=kind,
            )
            acct.home_ip = (
                w.ipv4(rnd.choice(cat.DOC_IPV4_PREFIXES))
                if rnd.random() < 0.3
                else w.home_ip(country)
            )
            acct.phone_device = w.device("desktop", country, city.tz)
            idxs.append(acct.idx)
        w.businesses[kind] = idxs

    # Persons, in households.
    n_persons = accounts - len(w.accounts)
    countries = rnd.choices(cat.HOME_COUNTRIES, weights=home_weights, k=n_persons)
    arche_names = list(cat.ARCHETYPE_SHARES)
    arche_w = list(cat.ARCHETYPE_SHARES.values())
    incomes = rng.lognormal(np.log(2600.0), 0.45, n_persons)
    rates = np.clip(rng.lognormal(np.log(2.0), 0.45, n_persons), 0.5, 6.0)
    i = 0
    household = 0
    by_city: dict[str, list[int]] = {}
    mobile_n = max(3, n_persons // 40)
    for country in cat.HOME_COUNTRIES:
        share = cat.HOME_WEIGHTS[cat.HOME_COUNTRIES.index(country)]
        w.mobile_pools[country] = [
            w.ipv4(rnd.choice(cat.MOBILE_PREFIXES[country]))
            for _ in range(max(3, round(mobile_n * share)))
        ]
    for c in (*cat.CITIES, *cat.TRAVEL_CITIES):
        if c.name not in w.wifi_ips:
            n_wifi = 3 if c.country not in cat.HOME_COUNTRIES else 5
            pool = [w.ipv4(rnd.choice(cat.DOC_IPV4_PREFIXES)) for _ in range(2)]
            pool += [
                w.ipv4(rnd.choice(cat.ISP_PREFIXES.get(c.country, ("81.2",))))
                for _ in range(n_wifi)
            ]
            w.wifi_ips[c.name] = pool
    employers_by_country: dict[str, list[int]] = {}
    for b in w.businesses["employer"]:
        employers_by_country.setdefault(w.accounts[b].country, []).append(b)
    while i < n_persons:
        country = countries[i]
        size = min(n_persons - i, rnd.choices((1, 2, 3, 4), weights=(40, 30, 15, 15))[0])
        cities = [c for c in cat.CITIES if c.country == country]
        city = rnd.choices(cities, weights=[c.weight for c in cities])[0]
        first, last = w.person_name(country)
        address = w.street_address(city)
        home_ip = w.home_ip(country)
        shared = None
        if (size > 1 and rnd.random() < 0.6) or (size == 1 and rnd.random() < 0.4):
            shared = w.device("desktop", country, city.tz)
        members: list[int] = []
        bank = BANK_COUNTRIES[country] if rnd.random() < 0.9 else rnd.choice(BANK_IDS)
        for k in range(size):
            if k > 0:
                first = w.person_name(country)[0]
                if rnd.random() < 0.2:
                    last = w.person_name(country)[1]
            arche = rnd.choices(arche_names, weights=arche_w)[0]
            if rnd.random() < 0.01:
                arche = "corporate"
            kind = "corporate" if arche == "corporate" else "person"
            income_eur = float(incomes[i])
            rate = float(rates[i])
            if arche == "student":
                income_eur = 700.0 + 400 * rnd.random()
            elif arche == "retired":
                income_eur *= 0.7
            elif arche == "corporate":
                rate = 10 + 15 * rnd.random()
            fx = cat.FX_PER_EUR[cat.COUNTRY_CURRENCY[country]]
            acct = w.add_account(
                kind=kind,
                bank=bank if rnd.random() < 0.95 else rnd.choice(BANK_IDS),
                country=country,
                city=city,
                currency=cat.COUNTRY_CURRENCY[country],
                name=f"{first} {last}",
                first=first,
                last=last,
                address=address,
                household=household,
                archetype=arche,
                rate=rate,
                spend=(income_eur / 2600.0) ** 0.5,
                income=round(income_eur * fx, 2),
            )
            acct.email = w.email_for(first, last, country)
            acct.phone = w.phone_number(country)
            acct.card_id = w.ids.hex("tok_", 16)
            acct.phone_device = w.device("phone", country, city.tz, rooted=rnd.random() < 0.01)
            acct.home_device = (
                shared
                if shared is not None or rnd.random() < 0.5
                else w.device("desktop", country, city.tz)
            )
            acct.home_ip = home_ip
            acct.mobile_ip = rnd.choice(w.mobile_pools[country])
            acct.fav = rnd.getrandbits(30)
            if rnd.random() < 0.15 and kind == "person":
                acct.wallet_id = w.ids.hex("cus_", 10)
            if arche == "retired":
                acct.employer = rnd.choice(
                    [b for b in w.businesses["pension"] if w.accounts[b].country == country]
                )
            elif arche != "student":
                local_emp = employers_by_country.get(country) or w.businesses["employer"]
                acct.employer = rnd.choice(local_emp)
            acct.salary_day = rnd.choice((1, 15, 25, 26, 27, 28, 28, 28))
            members.append(acct.idx)
            by_city.setdefault(city.name, []).append(acct.idx)
            w.persons.append(acct.idx)
            i += 1
        for m in members:
            w.accounts[m].family = [x for x in members if x != m]
        household += 1

    # Friends, bills, trips, accounts opened or closed during the window.
    utilities = {
        c: [b for b in w.businesses["utility"] if w.accounts[b].country == c]
        for c in cat.HOME_COUNTRIES
    }
    per_country = {
        k: {w.accounts[b].country: b for b in w.businesses[k]} for k in ("telecom", "insurer")
    }
    landlords_by_country: dict[str, list[int]] = {}
    for b in w.businesses["landlord"]:
        landlords_by_country.setdefault(w.accounts[b].country, []).append(b)
    travel_w = [c.weight for c in cat.TRAVEL_CITIES]
    trip_p = min(0.5, 0.05 * days / 30)
    for p in w.persons:
        a = w.accounts[p]
        local = by_city[a.city.name]
        for _ in range(rnd.randint(2, 6)):
            f = (
                local[rnd.randrange(len(local))]
                if rnd.random() < 0.8
                else w.persons[rnd.randrange(len(w.persons))]
            )
            if f != p and f not in a.friends and f not in a.family:
                a.friends.append(f)
        fx = cat.FX_PER_EUR[a.currency]
        exp_ = 0 if a.currency == "JPY" else 2
        if a.family and a.family[0] < p:
            pass  # the household's bills are paid by its first member
        else:
            util = utilities[a.country]
            if util:
                a.bills.append(
                    (
                        rnd.choice(util),
                        rnd.randint(1, 28),
                        round(rnd.uniform(60, 180) * fx, exp_),
                        "ENERGY DD",
                    )
                )
            a.bills.append(
                (
                    per_country["telecom"][a.country],
                    rnd.randint(1, 28),
                    round(rnd.uniform(15, 55) * fx, exp_),
                    "MOBILE DD",
                )
            )
            if rnd.random() < 0.5:
                a.bills.append(
                    (
                        per_country["insurer"][a.country],
                        rnd.randint(1, 28),
                        round(rnd.uniform(20, 90) * fx, exp_),
                        "INSURANCE DD",
                    )
                )
            if rnd.random() < 0.55 and a.archetype != "corporate":
                landlords = landlords_by_country.get(a.country) or w.businesses["landlord"]
                a.bills.append(
                    (
                        rnd.choice(landlords),
                        rnd.choice((1, 1, 1, 28, 30)),
                        round(rnd.uniform(600, 1800) * fx * a.spend, exp_),
                        "RENT SO",
                    )
                )
        if rnd.random() < trip_p and days >= 3:
            dest = rnd.choices(cat.TRAVEL_CITIES, weights=travel_w)[0]
            if dest.country != a.country:
                length = rnd.randint(2, min(7, max(2, days - 1)))
                s = rnd.randint(0, max(0, days - length))
                a.trip = (s, s + length, dest)
    n_new = round(len(w.persons) * 0.008)
    for p in rnd.sample(w.persons, n_new):
        w.accounts[p].opened_day = rnd.randrange(days)
    n_closed = round(len(w.persons) * 0.002)
    for p in rnd.sample(w.persons, n_closed):
        a = w.accounts[p]
        if a.opened_day is None:
            a.closed_day = rnd.randrange(days)

    # Merchants: in-person per city and category, online per country, ATMs per city.
    city_counts = {name: len(v) for name, v in by_city.items()}
    for c in (*cat.CITIES, *cat.TRAVEL_CITIES, *cat.FRAUD_CITIES):
        n_people = city_counts.get(c.name, 0)
        key_done = (c.name, cat.MCCS[0].code) in w.city_pools
        if key_done:
            continue
        for mc in cat.MCCS:
            if mc.online:
                continue
            n = max(2, round(n_people / _DENSITY[mc.code]))
            if c.country not in cat.HOME_COUNTRIES:
                n = 4
            w.city_pools[(c.name, mc.code)] = [
                w.new_merchant(f"{rnd.choice(surnames)} {mc.label}", mc.code, c.country, c)
                for _ in range(n)
            ]
        n_atm = max(2, n_people // 80) if c.country in cat.HOME_COUNTRIES else 3
        w.atms[c.name] = [
            w.new_merchant(f"ATM {c.name}", "6011", c.country, c, prefix="atm_")
            for _ in range(n_atm)
        ]
    global_online = {
        mc.code: [
            w.new_merchant(
                f"{rnd.choice(surnames)} {mc.label} Europe",
                mc.code,
                rnd.choice(("IE", "LU", "NL", "US")),
                None,
                _weighted(rnd, GATEWAY_WEIGHTS["*"]),
            )
            for _ in range(3)
        ]
        for mc in cat.MCCS
        if mc.online
    }
    for country in cat.HOME_COUNTRIES:
        n_c = sum(1 for p in w.persons if w.accounts[p].country == country)
        gw_w = GATEWAY_WEIGHTS.get(country, GATEWAY_WEIGHTS["*"])
        for mc in cat.MCCS:
            if not mc.online:
                continue
            n = max(3, round(n_c / 150))
            shops = [
                w.new_merchant(
                    f"{rnd.choice(surnames)} {mc.label}",
                    mc.code,
                    country,
                    None,
                    _weighted(rnd, gw_w),
                )
                for _ in range(n)
            ]
            w.online_pools[(country, mc.code)] = global_online[mc.code] + shops
    return w

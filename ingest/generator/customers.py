"""Protected customer attributes for fairness audits: age band, sex, region and nationality.

A bank keeps these about its customers but must not discriminate on them. The generator writes
them to ``truth/customers.csv`` only: they are never model inputs and never appear in any event
ingest sees. An audit (:mod:`gnn.fairness`) joins them to scored transactions by account id.

The draws come from a stream of their own, child 12 of ``numpy.random.SeedSequence(seed)`` (the
rest of the run uses children 0 to 11), and are made after everything else is written, so adding
the attributes leaves every other output file byte-identical. Each account takes the same fixed
number of uniforms, in account order (honest accounts first, then the ones fraud rings open),
so an account's attributes depend only on its own draws, its household, its archetype and its
fraud roles.

What the attributes follow:

- **age band** from the archetype: ``student`` is 18-24 (some 25-34), ``retired`` 65+ (some
  55-64), ``family`` 25-54, ``commuter`` and ``online`` spread over working ages, corporate-card
  holders 25-64. Invented synthetic identities are mostly 18-44.
- **sex** F or M about evenly, with a small X (0.6%).
- **region** the home country (ISO code); business accounts keep the country they are in.
- **nationality** mostly the home country; a country-dependent share (7-14%) holds another one.
  Members of a household usually share it.
- Business accounts (employers, utilities, merchant owners...) are not persons: their age band,
  sex and nationality are ``n/a``.

Mild correlations with fraud roles, as reported in practice: money mules skew young (30% of
mules that are not retired have their age band redrawn from 18-34) and scam victims of mule
networks skew old (30% of those who are neither students nor retired are redrawn from 55+). No
other attribute depends on a fraud role.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.generator.fraud import Ring
from ingest.generator.world import Account, World

ATTRIBUTE_STREAM = 12
"""Spawn key of the attribute stream under ``SeedSequence(seed)`` (the run uses 0 to 11)."""

ATTRIBUTES: tuple[str, ...] = ("age_band", "sex", "region", "nationality")
"""The protected attributes written, in column order after ``account_id``."""

AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
SEXES: tuple[str, ...] = ("F", "M", "X")
NOT_APPLICABLE = "n/a"
"""The value of a person-only attribute for a business account."""

HEADER = "account_id," + ",".join(ATTRIBUTES) + "\n"

_AGE_BY_ARCHETYPE: dict[str, tuple[float, ...]] = {
    # 18-24, 25-34, 35-44, 45-54, 55-64, 65+
    "student": (0.85, 0.15, 0.0, 0.0, 0.0, 0.0),
    "retired": (0.0, 0.0, 0.0, 0.0, 0.12, 0.88),
    "family": (0.0, 0.35, 0.45, 0.20, 0.0, 0.0),
    "commuter": (0.08, 0.30, 0.25, 0.22, 0.14, 0.01),
    "online": (0.20, 0.35, 0.22, 0.12, 0.08, 0.03),
    "corporate": (0.0, 0.15, 0.35, 0.35, 0.15, 0.0),
    "synthetic": (0.25, 0.45, 0.20, 0.10, 0.0, 0.0),
}
_AGE_MULE = (0.6, 0.4, 0.0, 0.0, 0.0, 0.0)
_AGE_SCAM_VICTIM = (0.0, 0.0, 0.0, 0.0, 0.4, 0.6)
_MULE_SHIFT = 0.3
_VICTIM_SHIFT = 0.3

_SEX_WEIGHTS = (0.497, 0.497, 0.006)

_FOREIGN_SHARE: dict[str, float] = {
    "GB": 0.14,
    "DE": 0.13,
    "FR": 0.08,
    "NL": 0.09,
    "ES": 0.12,
    "US": 0.07,
}
"""Share of customers in each home country who hold another nationality."""

_FOREIGN: dict[str, tuple[tuple[str, float], ...]] = {
    "GB": (("PL", 3), ("IN", 3), ("RO", 2), ("IE", 2), ("IT", 1), ("PT", 1), ("NG", 1)),
    "DE": (("TR", 4), ("PL", 2), ("SY", 2), ("RO", 2), ("IT", 1), ("UA", 1)),
    "FR": (("PT", 3), ("DZ", 3), ("MA", 3), ("IT", 1), ("ES", 1), ("TN", 1)),
    "NL": (("DE", 2), ("PL", 3), ("TR", 2), ("MA", 2), ("BE", 1), ("GB", 1)),
    "ES": (("MA", 3), ("RO", 3), ("CO", 2), ("GB", 1), ("IT", 1), ("VE", 1)),
    "US": (("MX", 5), ("IN", 2), ("CN", 2), ("PH", 1), ("CA", 1), ("GB", 1)),
}
_FOREIGN_DEFAULT: tuple[tuple[str, float], ...] = (("US", 1), ("GB", 1), ("DE", 1))
_HOUSEHOLD_SHARE = 0.85
"""Chance that a later household member has the nationality of the household's first member."""

_DRAWS = 6  # uniforms per account: age, sex, role shift, foreign?, which foreign, household


@dataclass(frozen=True, slots=True)
class CustomerAttributes:
    """One account's protected attributes (as written to ``truth/customers.csv``)."""

    account_id: str
    age_band: str
    sex: str
    region: str
    nationality: str

    def row(self) -> str:
        """The CSV line (no quoting is needed: no value holds a comma)."""
        return f"{self.account_id},{self.age_band},{self.sex},{self.region},{self.nationality}\n"


def _pick(u: float, names: tuple[str, ...], weights: tuple[float, ...]) -> str:
    total = sum(weights)
    acc = 0.0
    for name, weight in zip(names, weights, strict=True):
        acc += weight / total
        if u < acc and weight > 0:
            return name
    return next(n for n, w in zip(reversed(names), reversed(weights), strict=True) if w > 0)


def _nationality(country: str, u_foreign: float, u_which: float) -> str:
    if u_foreign >= _FOREIGN_SHARE.get(country, 0.1):
        return country
    pairs = _FOREIGN.get(country, _FOREIGN_DEFAULT)
    return _pick(u_which, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def _age_band(a: Account, roles: set[tuple[str, str]], u_age: float, u_shift: float) -> str:
    arche = "synthetic" if a.synthetic else a.archetype
    weights = _AGE_BY_ARCHETYPE.get(arche, _AGE_BY_ARCHETYPE["commuter"])
    if any(role == "mule" for role, _ in roles) and arche != "retired":
        if u_shift < _MULE_SHIFT:
            weights = _AGE_MULE
    elif (
        ("victim", "mule_network") in roles
        and arche not in ("student", "retired")
        and u_shift < _VICTIM_SHIFT
    ):
        weights = _AGE_SCAM_VICTIM
    return _pick(u_age, AGE_BANDS, weights)


def draw_attributes(world: World, rings: list[Ring], seed: int) -> list[CustomerAttributes]:
    """Draw the protected attributes of every account, sorted by account id.

    Reads the world and the rings without changing them and draws only from the attribute
    stream, so the rest of a run is unaffected.

    Args:
        world: the population, with account ids assigned.
        rings: the planted fraud rings (mules and scam victims shift age bands mildly).
        seed: the run's seed.

    Returns:
        One :class:`CustomerAttributes` per account, sorted by ``account_id``.
    """
    ss = np.random.SeedSequence(seed, spawn_key=(ATTRIBUTE_STREAM,))
    u = np.random.default_rng(ss).random((len(world.accounts), _DRAWS)).tolist()
    roles: dict[int, set[tuple[str, str]]] = {}
    for ring in rings:
        for acct, role in ring.members:
            roles.setdefault(acct.idx, set()).add((role, ring.typology))
    household_nat: dict[int, str] = {}
    out: list[CustomerAttributes] = []
    for a in world.accounts:
        d = u[a.idx]
        if a.kind == "business":
            out.append(
                CustomerAttributes(
                    a.account_id, NOT_APPLICABLE, NOT_APPLICABLE, a.country, NOT_APPLICABLE
                )
            )
            continue
        own = _nationality(a.country, d[3], d[4])
        if a.household >= 0:
            first = household_nat.setdefault(a.household, own)
            nationality = first if d[5] < _HOUSEHOLD_SHARE else own
        else:
            nationality = own
        out.append(
            CustomerAttributes(
                a.account_id,
                _age_band(a, roles.get(a.idx, set()), d[0], d[2]),
                _pick(d[1], SEXES, _SEX_WEIGHTS),
                a.country,
                nationality,
            )
        )
    out.sort(key=lambda c: c.account_id)
    return out


def write_customers(path: Path, world: World, rings: list[Ring], seed: int) -> None:
    """Write ``truth/customers.csv``: ``account_id,age_band,sex,region,nationality``.

    Args:
        path: the file to write.
        world: the population, with account ids assigned.
        rings: the planted fraud rings.
        seed: the run's seed.
    """
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for c in draw_attributes(world, rings, seed):
            fh.write(c.row())

"""Building canonical events and routing them to the source that will report them.

Honest and fraudulent activity both go through one :class:`Emitter`, so a fraudster's payment
looks exactly like anyone else's on the wire; only the ``label`` (typology, ring id) that goes to
the truth files differs.

An event is kept as a canonical dict whose ``timestamp`` is still an integer (UTC epoch
seconds); each sink formats times, amounts and ids its own way when it writes. Keys starting
with ``_`` carry routing details a sink needs (the wallet document, a core-banking booking
type) and are removed by that sink.

Events are bucketed by UTC day; :meth:`Emitter.take` hands a day's events to the writers sorted
by (time, emission order), which makes every output file deterministic.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from ingest.generator.world import Account, Device, Merchant, World

Label = tuple[str, str] | None
"""(typology, ring id) for fraud, ``None`` for honest activity."""

Event = tuple[int, int, str, dict[str, Any], Label]
"""(UTC epoch seconds, emission sequence number, sink name, canonical record, label)."""

STREAM_ATM_BANKS = frozenset({"bank_alba", "bank_liberty"})
"""Banks whose ATM withdrawals appear in their event stream; others book them in core banking."""

_SORT = itemgetter(0, 1)


class Emitter:
    """Collects events per UTC day of the window.

    Args:
        world: the population (for time bounds).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.t0 = world.t0
        self.days = world.days
        self.end = world.t0 + world.days * 86400
        self.buckets: list[list[Event]] = [[] for _ in range(world.days)]
        self.seq = 0
        self.dropped = 0

    def _push(self, ts: int, sink: str, rec: dict[str, Any], label: Label) -> bool:
        if not self.t0 <= ts < self.end:
            self.dropped += 1
            return False
        self.seq += 1
        self.buckets[(ts - self.t0) // 86400].append((ts, self.seq, sink, rec, label))
        return True

    def take(self, day: int) -> list[Event]:
        """Remove and return day ``day``'s events in time order."""
        events = self.buckets[day]
        self.buckets[day] = []
        events.sort(key=_SORT)
        return events

    # -- transactions ------------------------------------------------------------------------

    def card(
        self,
        a: Account,
        ts: int,
        amount: float,
        currency: str,
        m: Merchant,
        *,
        status: str = "approved",
        label: Label = None,
        card_id: str | None = None,
    ) -> bool:
        """A card-present payment (or an ATM withdrawal when ``m`` is an ATM)."""
        if m.mcc == "6011":
            return self.atm(a, ts, amount, currency, m, status=status, label=label, card_id=card_id)
        return self._push(
            ts,
            "bank:" + a.bank,
            {
                "event_type": "transaction",
                "txn_id": "",
                "timestamp": ts,
                "source": a.bank,
                "account_id": a.account_id,
                "amount": amount,
                "currency": currency,
                "channel": "card_present",
                "card_id": card_id or a.card_id,
                "merchant_id": m.merchant_id,
                "merchant_category": m.mcc,
                "merchant_country": m.country,
                "geo": m.geo,
                "status": status,
            },
            label,
        )

    def atm(
        self,
        a: Account,
        ts: int,
        amount: float,
        currency: str,
        atm: Merchant,
        *,
        status: str = "approved",
        label: Label = None,
        card_id: str | None = None,
    ) -> bool:
        """A cash withdrawal: in the bank stream or in core banking, depending on the bank."""
        in_stream = a.bank in STREAM_ATM_BANKS
        return self._push(
            ts,
            "bank:" + a.bank if in_stream else "core",
            {
                "event_type": "transaction",
                "txn_id": "",
                "timestamp": ts,
                "source": a.bank if in_stream else "core_banking",
                "account_id": a.account_id,
                "amount": amount,
                "currency": currency,
                "channel": "atm",
                "card_id": card_id or a.card_id,
                "merchant_id": atm.merchant_id,
                "merchant_category": "6011",
                "merchant_country": atm.country,
                "geo": atm.geo,
                "status": status,
                "_kind": "ATM",
                "_narr": f"ATM {atm.city}",
                "_bank": a.bank,
            },
            label,
        )

    def cnp(
        self,
        a: Account,
        ts: int,
        amount: float,
        currency: str,
        m: Merchant,
        *,
        device: Device | None,
        ip: str | None,
        email: str | None,
        phone: str | None,
        address: str | None,
        status: str = "approved",
        label: Label = None,
        card_id: str | None = None,
    ) -> bool:
        """An online (card-not-present) payment, reported by the merchant's gateway."""
        return self._push(
            ts,
            "gw:" + (m.gateway or "gw_paynova"),
            {
                "event_type": "transaction",
                "txn_id": "",
                "timestamp": ts,
                "source": m.gateway,
                "account_id": a.account_id,
                "amount": amount,
                "currency": currency,
                "channel": "card_not_present",
                "card_id": card_id or a.card_id,
                "merchant_id": m.merchant_id,
                "merchant_category": m.mcc,
                "merchant_country": m.country,
                "device_id": device.device_id if device else None,
                "ip": ip,
                "user_agent": device.user_agent if device else None,
                "email": email,
                "phone": phone,
                "billing_address": address,
                "status": status,
                "_mname": m.name,
                "_app": bool(device and device.kind == "phone"),
            },
            label,
        )

    def wallet_payment(
        self,
        a: Account,
        ts: int,
        amount: float,
        currency: str,
        m: Merchant,
        *,
        device: Device | None,
        ip: str | None,
        geo: dict[str, Any] | None,
        status: str = "approved",
        label: Label = None,
    ) -> bool:
        """A payment made with the digital wallet (nested in the customer's document)."""
        return self._push(
            ts,
            "wallet",
            {
                "event_type": "transaction",
                "txn_id": "",
                "timestamp": ts,
                "amount": amount,
                "currency": currency,
                "merchant_id": m.merchant_id,
                "merchant_category": m.mcc,
                "merchant_country": m.country,
                "merchant_name": m.name,
                "device_id": device.device_id if device else None,
                "ip": ip,
                "geo": geo,
                "status": status,
                "_doc": a.wallet_id,
            },
            label,
        )

    def transfer(
        self,
        payer: Account,
        ts: int,
        amount: float,
        currency: str,
        payee_id: str,
        *,
        kind: str,
        narrative: str,
        device: Device | None = None,
        ip: str | None = None,
        status: str = "approved",
        label: Label = None,
        origin: str = "mobile",
    ) -> bool:
        """A transfer booked in core banking (``kind``: SAL, DD, SO, TRF, INV)."""
        return self._push(
            ts,
            "core",
            {
                "event_type": "transaction",
                "txn_id": "",
                "timestamp": ts,
                "source": "core_banking",
                "account_id": payer.account_id,
                "amount": amount,
                "currency": currency,
                "channel": "transfer",
                "counterparty_account_id": payee_id,
                "device_id": device.device_id if device else None,
                "ip": ip,
                "status": status,
                "_kind": kind,
                "_narr": narrative,
                "_origin": origin,
                "_bank": payer.bank,
            },
            label,
        )

    # -- other events --------------------------------------------------------------------------

    def login(
        self,
        a: Account,
        ts: int,
        *,
        via: str,
        success: bool,
        mfa: bool,
        device: Device | None,
        ip: str,
        geo: dict[str, Any] | None,
        reason: str | None = None,
        label: Label = None,
        user_agent: str | None = None,
    ) -> bool:
        """A login attempt: ``via`` is ``app`` (bank stream), ``web`` (auth log) or ``wallet``."""
        sink = {"app": "bank:" + a.bank, "web": "auth", "wallet": "wallet"}[via]
        ua = user_agent or (device.user_agent if device else None)
        if via == "app" and device is not None:
            ua = _app_agent(a.bank, device)
        return self._push(
            ts,
            sink,
            {
                "event_type": "login",
                "event_id": "",
                "timestamp": ts,
                "account_id": a.account_id,
                "success": success,
                "mfa_used": mfa,
                "source": a.bank if via == "app" else None,
                "device_id": device.device_id if device else None,
                "ip": ip,
                "geo": geo,
                "user_agent": ua,
                "failure_reason": reason,
                "_doc": a.wallet_id,
                "_region": "us" if a.country == "US" else "eu",
            },
            label,
        )

    def device_seen(
        self,
        a: Account,
        ts: int,
        device: Device | None,
        ip: str,
        geo: dict[str, Any] | None,
        *,
        via: str = "app",
        label: Label = None,
    ) -> bool:
        """A device fingerprint observation, in the bank stream (``app``) or the wallet.

        Returns False (nothing emitted) when ``device`` is None or ``ts`` is outside the window.
        """
        if device is None:
            return False
        return self._push(
            ts,
            "bank:" + a.bank if via == "app" else "wallet",
            {
                "event_type": "device_event",
                "event_id": "",
                "timestamp": ts,
                "device_id": device.device_id,
                "account_id": a.account_id,
                "source": a.bank,
                "os": device.os,
                "os_version": device.os_version,
                "browser": device.browser,
                "emulator": device.emulator,
                "rooted": device.rooted,
                "screen": device.screen,
                "timezone": device.timezone,
                "language": device.language,
                "ip": ip,
                "geo": geo,
                "_model": device.model,
                "_doc": a.wallet_id,
            },
            label,
        )

    def account_event(
        self,
        a: Account,
        ts: int,
        kind: str,
        *,
        new_value: str | None = None,
        device: Device | None = None,
        ip: str | None = None,
        via: str = "bank",
        label: Label = None,
        reset_via: str = "email_link",
    ) -> bool:
        """An account change; password resets go to the auth log (``via="auth"``)."""
        return self._push(
            ts,
            "bank:" + a.bank if via == "bank" else "auth",
            {
                "event_type": "account_event",
                "event_id": "",
                "timestamp": ts,
                "account_id": a.account_id,
                "kind": kind,
                "new_value": new_value,
                "source": a.bank,
                "device_id": device.device_id if device else None,
                "ip": ip,
                "_via": reset_via,
                "_region": "us" if a.country == "US" else "eu",
            },
            label,
        )

    def noise(self, ts: int, text: str, region: str = "eu") -> bool:
        """An auth-server log line that is not an event (health checks, session expiry...)."""
        return self._push(
            ts, "auth", {"event_type": "noise", "_text": text, "_region": region}, None
        )


def _app_agent(bank: str, device: Device) -> str:
    app = {
        "bank_alba": "AlbaMobile/7.4.2",
        "bank_rhein": "RheinBanking/5.12.0",
        "bank_meridian": "MeridianApp/3.31.1",
        "bank_liberty": "LibertyBank/24.10.3",
    }[bank]
    return f"{app} ({device.model or device.os}; {device.os} {device.os_version})"

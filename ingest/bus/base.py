"""The bus interface that every backend implements.

A *topic* is an ordered, append-only log of records. Each record has an *offset* (0, 1, 2... in
append order), an optional *key* (the account or entity it is about) and a timestamp. Readers
belong to a *group*; a group's *committed offset* is the offset of the first record it has not
acknowledged yet. A consumer starts reading at its group's committed offset, so delivery is
at-least-once: whatever was polled but not committed before a crash is delivered again.

How the words map onto Pulsar, so that a Pulsar backend fits behind the same methods:

=================  ============================================================================
this interface     Pulsar
=================  ============================================================================
topic              a persistent topic (``persistent://<tenant>/<namespace>/<topic>``)
key                the message key (ordering and routing key of a ``Key_Shared`` subscription)
group              a subscription (exclusive here: one consumer per group at a time)
offset             a per-topic sequence number that the topic's single writer assigns and
                   sends as the ``sequence_id`` (deduplicated by the broker) and a message
                   property (the Python client does not expose the broker-entry index)
``commit(n)``      a cumulative acknowledgement of the message with offset ``n - 1``
``seek(n)``        ``Consumer.seek`` to the message id of the message with offset ``n``
``end_offset``     the offset of the last message (``get_last_message_id``), plus one
=================  ============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Final, NamedTuple, Protocol, Self

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Topic and group names: letters, digits, ``.``, ``_``, ``-``; a file name and a Pulsar name."""


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid topic or group name, else raise ValueError.

    >>> check_name("topic", "transactions.v1")
    'transactions.v1'
    >>> check_name("group", "../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid group name '../etc': use 1-128 letters, digits, '.', '_' or '-', ...
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class Record(NamedTuple):
    """One record of a topic, as a consumer receives it.

    A named tuple rather than a dataclass: it is just as immutable and it can be built in C,
    which matters when a consumer reads a million records a second.

    Attributes:
        offset: the record's place in its topic, from 0.
        key: the key it was appended with, or None.
        payload: the bytes it was appended with.
        timestamp_ms: when it was appended, in milliseconds since the Unix epoch (UTC).
    """

    offset: int
    key: str | None
    payload: bytes
    timestamp_ms: int


class Consumer(Protocol):
    """Reads one topic for one group; obtained from :meth:`Bus.consumer`.

    A consumer starts at its group's committed offset. :meth:`poll` moves :attr:`position`
    forward; :meth:`commit` makes progress durable. A consumer is used from one thread.
    """

    @property
    def topic(self) -> str:
        """The topic read."""
        ...

    @property
    def group(self) -> str:
        """The group whose committed offset this consumer reads and writes."""
        ...

    @property
    def committed(self) -> int:
        """The group's committed offset: the first record not yet acknowledged."""
        ...

    @property
    def position(self) -> int:
        """The offset of the next record :meth:`poll` returns."""
        ...

    @property
    def lag(self) -> int:
        """Records appended but not yet committed by the group: ``end_offset - committed``."""
        ...

    def poll(self, max_records: int = 1000) -> list[Record]:
        """Return up to ``max_records`` records from :attr:`position` on, in offset order.

        Never waits: returns what is fully written now, possibly ``[]``.

        Raises:
            BusCorrupted: the log is damaged at the position being read.
        """
        ...

    def commit(self, next_offset: int | None = None) -> None:
        """Durably record that the group has handled every record before ``next_offset``.

        Args:
            next_offset: the group's new committed offset, at most :attr:`position`; by default
                :attr:`position`, that is just after the last record polled.

        Raises:
            ValueError: ``next_offset`` is negative or beyond :attr:`position`.
        """
        ...

    def seek(self, offset: int) -> None:
        """Move :attr:`position` to ``offset`` (between 0 and the topic's end offset).

        The committed offset is unchanged until the next :meth:`commit`.
        """
        ...

    def close(self) -> None:
        """Release the consumer (without committing); the group may then be consumed again."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Bus(Protocol):
    """Topics of records: append in batches, read through consumer groups."""

    def append(
        self,
        topic: str,
        payloads: Sequence[bytes],
        keys: Sequence[str | None] | None = None,
    ) -> int:
        """Append a batch of records to ``topic`` (created on first use), in order.

        The batch is durable when the call returns (as far as the backend's durability setting
        goes). An empty batch changes nothing.

        Args:
            topic: the topic's name (see :data:`NAME_PATTERN`).
            payloads: the records' bytes.
            keys: one key or None per payload; None for no keys.

        Returns:
            The offset of the batch's last record (for an empty batch, of the topic's last
            record, -1 when the topic is empty).

        Raises:
            ValueError: bad topic name, ``keys`` of another length, a record too large.
            BusError: the batch could not be appended; no part of it is visible.
        """
        ...

    def consumer(self, topic: str, group: str) -> Consumer:
        """Open the consumer of ``group`` on ``topic`` (the topic need not exist yet).

        Raises:
            BusError: the group already has an open consumer.
        """
        ...

    def end_offset(self, topic: str) -> int:
        """The offset the next appended record will get: the number of records in ``topic``."""
        ...

    def close(self) -> None:
        """Close the bus and every consumer it opened."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_batch(payloads: Sequence[bytes], keys: Sequence[str | None] | None) -> None:
    """Raise ValueError when ``keys`` does not match ``payloads``."""
    if keys is not None and len(keys) != len(payloads):
        raise ValueError(f"{len(keys)} keys for {len(payloads)} payloads")

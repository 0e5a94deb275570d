"""The event bus: topics of records, appended in batches and read by consumer groups.

:class:`Bus` and :class:`Consumer` are the interface (:mod:`ingest.bus.base`);
:class:`EmbeddedBus` keeps topics in a folder on local disk (:mod:`ingest.bus.embedded`). A Pulsar
backend implements the same interface.
"""

from ingest.bus.base import Bus, Consumer, Record, check_name
from ingest.bus.embedded import EmbeddedBus, EmbeddedConsumer

__all__ = ["Bus", "Consumer", "EmbeddedBus", "EmbeddedConsumer", "Record", "check_name"]

# Where the collector puts readings: one small interface, `Sink`, and SQLite as the first
# implementation. Other destinations are classes of their own modules (pgsink.PostgresSink,
# outbox.OutboxSink wrapping either to publish over MQTT); sessions and the collector only
# ever call store(), summary_lines() and close().
#
# A reading handed to a sink is a dict: the fields of host_tools.store.parse_reading plus
# ts (collector receive time, Unix seconds), node (the pinned name), node_key (64 hex) and
# source (serial port/URL or tcp:HOST:PORT).

from host_tools.store import StoreError


class SinkError(Exception):
    """A sink could not commit a batch. Nothing of it is committed; the sink stays usable and
    the same batch may be offered again (the collector retries it with backoff)."""


class Sink:
    """The interface every destination implements. `name` says where readings go (for logs
    and the summary)."""

    name = "sink"

    def store(self, readings):
        """Commit `readings` (a list of reading dicts, in order) all or nothing.

        Returns the readings that were new (a list, in order); the others were stored before
        (same node key, boot and seq) and are committed too. Raises SinkError when nothing
        was committed."""
        raise NotImplementedError

    def stored(self, keys):
        """Which of `keys` ((node_key, boot, seq) triples of v2 readings) are stored, as a set.
        Raises SinkError. Used by the MQTT outbox to settle what a crash left undecided."""
        raise NotImplementedError

    def summary_lines(self):
        """Extra lines for the collector's summary (a sink that publishes reports its outbox)."""
        return []

    def close(self):
        """Release the destination. Never raises."""
        raise NotImplementedError


class SqliteSink(Sink):
    """Readings into a host_tools.store.Store (a SQLite file)."""

    def __init__(self, store):
        self.db = store
        self.name = store.path

    def store(self, readings):
        try:
            new = self.db.add_many(readings)
        except StoreError as e:
            raise SinkError(str(e))
        return [r for r, n in zip(readings, new) if n]

    def stored(self, keys):
        try:
            return self.db.stored_keys(keys)
        except StoreError as e:
            raise SinkError(str(e))

    def close(self):
        self.db.close()

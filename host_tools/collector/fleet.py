# The collector's destinations as chosen on the command line: the store (a SQLite file, or
# PostgreSQL for a postgresql:// URL) and, with --mqtt, the outbox and the MQTT publisher in
# front of it. cli.py calls add_options() and open_sink(); everything else about the fleet
# lives in pgsink.py, outbox.py and mqtt.py.

import logging

from host_tools.store import Store, StoreError
from host_tools.collector.logs import event
from host_tools.collector.sinks import SqliteSink, SinkError

EXIT_DB = 5
EXIT_MQTT = 7


class StartupError(Exception):
    """A destination cannot be used; `code` is the exit code, the message one line."""

    def __init__(self, code, msg):
        Exception.__init__(self, msg)
        self.code = code


def add_options(ap):
    """The MQTT options, in their own group (the store is chosen by --db)."""
    from host_tools.collector import mqtt, outbox
    g = ap.add_argument_group("MQTT out (README \"Fleet\"); --db postgresql://... selects PostgreSQL")
    g.add_argument("--mqtt", metavar="URL",
                   help="publish every stored reading to mqtt[s]://[user[:pass]@]host[:port] "
                        "(QoS 1, through a persistent outbox)")
    g.add_argument("--mqtt-credentials", metavar="FILE",
                   help="file with one line user:password, used when the URL has no user (else %s / %s)"
                        % (mqtt.ENV_USER, mqtt.ENV_PASSWORD))
    g.add_argument("--mqtt-ca", metavar="FILE", help="CA certificates for mqtts:// (default: the system's)")
    g.add_argument("--mqtt-topic", default=mqtt.DEFAULT_TOPIC, metavar="TEMPLATE",
                   help="reading topic; {node}, {sensor}, {key} (default %s)" % mqtt.DEFAULT_TOPIC)
    g.add_argument("--mqtt-base", default=mqtt.DEFAULT_BASE, metavar="LEVEL",
                   help="first level of the availability topics (default %s)" % mqtt.DEFAULT_BASE)
    g.add_argument("--mqtt-client-id", metavar="ID",
                   help="MQTT client id (default ossuary-HOST-<hash of the outbox path>)")
    g.add_argument("--mqtt-outbox", default="mqtt-outbox.db", metavar="FILE",
                   help="persistent outbox (SQLite) for readings not yet acknowledged by the "
                        "broker (default mqtt-outbox.db)")
    g.add_argument("--mqtt-outbox-max", type=int, default=outbox.DEFAULT_MAX_ROWS, metavar="N",
                   help="outbox bound in readings; beyond it the oldest are dropped and counted "
                        "(default %d)" % outbox.DEFAULT_MAX_ROWS)
    g.add_argument("--mqtt-node-timeout", type=float, default=mqtt.NODE_TIMEOUT_S, metavar="SECONDS",
                   help="a node is published offline after this long without a reading "
                        "(default %g)" % mqtt.NODE_TIMEOUT_S)
    g.add_argument("--ha-discovery", action="store_true",
                   help="publish Home Assistant MQTT discovery configs for every sensor")
    g.add_argument("--ha-prefix", default=mqtt.DEFAULT_HA_PREFIX, metavar="PREFIX",
                   help="Home Assistant discovery prefix (default %s)" % mqtt.DEFAULT_HA_PREFIX)


def is_file_db(db):
    """True if --db names a SQLite file (what ossuary-plot reads), not a server URL."""
    from host_tools.collector.pgsink import is_postgres_url
    return not is_postgres_url(db)


def open_primary(db):
    """The store for --db: PostgresSink for a postgresql:// URL, else SqliteSink.
    Raises StartupError."""
    from host_tools.collector.pgsink import is_postgres_url, PostgresSink
    if is_postgres_url(db):
        try:
            return PostgresSink(db)
        except SinkError as e:
            raise StartupError(EXIT_DB, str(e))
    try:
        return SqliteSink(Store(db))
    except StoreError as e:
        raise StartupError(EXIT_DB, str(e))


def open_sink(args):
    """The sink for the parsed options (store, then outbox and publisher if --mqtt), the
    publisher connected and running. Raises StartupError (nothing left open)."""
    primary = open_primary(args.db)
    if not args.mqtt:
        return primary
    from host_tools.collector import mqtt
    from host_tools.collector.outbox import Outbox, OutboxSink, OutboxError
    box = None
    try:
        if args.mqtt_outbox_max < 1:
            raise StartupError(2, "--mqtt-outbox-max must be at least 1")
        cfg = mqtt.MqttConfig(args.mqtt, credentials=args.mqtt_credentials, ca=args.mqtt_ca,
                              topic=args.mqtt_topic, base=args.mqtt_base,
                              client_id=args.mqtt_client_id, ha=args.ha_discovery,
                              ha_prefix=args.ha_prefix, node_timeout=args.mqtt_node_timeout,
                              id_seed=args.mqtt_outbox)
        box = Outbox(args.mqtt_outbox, args.mqtt_outbox_max, cfg.topic)
        ready, deleted = box.recover(primary)
        if ready or deleted:
            event(logging.INFO, "mqtt_outbox_recovered", "settled readings a crash left pending",
                  queued=ready, dropped=deleted)
        pub = mqtt.MqttPublisher(cfg, box)
        pub.start()
    except (mqtt.MqttError, OutboxError, SinkError) as e:
        if box is not None:
            box.close()
        primary.close()
        raise StartupError(EXIT_MQTT, str(e))
    except StartupError:
        primary.close()
        raise
    return OutboxSink(primary, box, pub)

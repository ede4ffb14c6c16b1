# The collector behind ossuary-collect, one module per job (the way pyserial separates
# transports from the protocol shell):
#
#   transports.py  byte pipes: serial port / pyserial URL, raw fd (pty), accepted TCP socket
#   session.py     one node session: Connection, trust decisions, reading validation
#   sinks.py       where readings go: the Sink interface and its SQLite implementation
#   pgsink.py      the PostgreSQL sink (psycopg 3): one database for a fleet of collectors
#   outbox.py      the persistent, bounded MQTT outbox, and the sink that fills it with the store
#   mqtt.py        the MQTT publisher (paho-mqtt): outbox to broker, availability, HA discovery
#   fleet.py       the command line's choice of sinks (--db URL, --mqtt options)
#   core.py        Collector: threads per source, TCP admission, TOFU limits, statistics
#   cli.py         argparse, start-up checks, signals, summary (host_tools/collect.py runs it)
#   logs.py        structured log events as text or JSON lines

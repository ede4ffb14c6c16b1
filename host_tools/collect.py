# ossuary-collect: receive sensor readings from Ossuary nodes over serial ports and TCP, store
# them. The entry point named in pyproject.toml; the collector itself is host_tools/collector/.

import sys

from host_tools.collector.cli import main
from host_tools.collector.core import Collector
from host_tools.collector.logs import setup_logging

__all__ = ["main", "Collector", "setup_logging"]

if __name__ == "__main__":
    sys.exit(main())

# Entry point of the sensor node on the MicroPython unix port.
#
#   micropython port/unix/main.py [CONFIG]     (else $OSSUARY_NODE_CONFIG, else node_config.json)
#
# Exit status: 0 after max_readings were sent, 2 for a configuration error (one line on
# stderr), 130 on Ctrl-C.

import os
import sys


def _setup_path():
    # Run from a checkout: this directory (board.py), ../common (node.py ...) and the repo
    # root (ossuary_micro, ossuary_io) must be importable.
    here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
    for p in (here + "/../..", here + "/../common", here):
        if p not in sys.path:
            sys.path.insert(0, p)


def _main():
    _setup_path()
    import board
    import node
    path = sys.argv[1] if len(sys.argv) > 1 else (os.getenv("OSSUARY_NODE_CONFIG")
                                                  or "node_config.json")
    return node.main(board, path)


sys.exit(_main())

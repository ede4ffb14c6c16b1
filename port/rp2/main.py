# main.py: start the Ossuary sensor node at boot (configuration in /node_config.json).
#
# The 3-second pause keeps the board recoverable: mpremote (and Ctrl-C) can interrupt here
# before the node may disable Ctrl-C on a REPL UART. After a config error the REPL stays up.

import time

print("ossuary node starts in 3 s (Ctrl-C to stop)")
time.sleep(3)

import board
import node

node.main(board, "node_config.json")

# main.py: start the Ossuary sensor node at boot (configuration in /node_config.json).
#
# The 3-second pause keeps the board recoverable: mpremote (and Ctrl-C) can interrupt here
# before the node may disable Ctrl-C on a REPL UART. After a config error the REPL stays up.

import time

print("ossuary node starts in 3 s (Ctrl-C to stop)")
time.sleep(3)

# The crypto backend first, while the heap is still unfragmented: its code is the largest
# single piece (docs/boards.md, "Heap"). A failure is reported again by the node itself.
try:
    from ossuary_micro.crypto import get_backend
    get_backend()
except Exception as e:
    print("crypto backend:", e)

import board
import node

node.main(board, "node_config.json")

# make bench's node-heap rows for the MicroPython unix port (bench/run.py unix_node_heap), with a
# short session: the bench builds its run script from tools/board_test.py, and when the two
# drifted apart (board_test's script grew a `link` argument) `make bench` died with a
# TypeError that no test saw. Here the bench's own code runs the three sessions it reports
# (protocol 1, protocol 2, protocol 2 over the link layer) and every one must give figures.

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench/run.py under a name of its own (a plain `import run` could meet another "run").
_spec = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def test_bench_unix_node_heap_rows(tmp_path):
    rows = run.unix_node_heap(5, str(tmp_path))
    assert [r[2] for r in rows] == [1, 2, "2 + link"]
    for where, heap, proto, fig, note in rows:
        assert fig is not None, (proto, note)
        # The node's own share is positive and below the heap given; the peer was measured.
        assert 0 < fig["node_peak"] < fig["heap_peak"] <= 128 * 1024, (proto, fig)
        assert fig["peer"] > 0, (proto, fig)

"""cProfile of the 64 B record path (issue 10): send_data, receive_data, next_event until
NEED_DATA, on the cryptography backend, in memory. Writes the profile as text.

  .venv/bin/python bench/profile_records.py [--records 200000] [--out bench/notes/profile_64B.txt]
"""

import argparse
import cProfile
import io
import os
import platform
import pstats
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from side_by_side import oss_handshake, oss_record   # noqa: E402
from ossuary_micro.crypto import get_backend         # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "notes", "profile_64B.txt"))
    args = ap.parse_args(argv)
    b = get_backend("cryptography")
    seeds = (bytes(range(1, 33)), bytes(range(33, 65)))
    keys = seeds + (b.ed25519_public(seeds[0]), b.ed25519_public(seeds[1]))
    c, s, _ = oss_handshake(b, False, keys)
    one, _ = oss_record(c, s, 64)

    def loop(n):
        for _ in range(n):
            one()
    loop(1000)
    t = time.perf_counter()
    loop(args.records)
    plain = args.records / (time.perf_counter() - t)
    prof = cProfile.Profile()
    prof.runcall(loop, args.records)
    text = io.StringIO()
    st = pstats.Stats(prof, stream=text)
    st.sort_stats("tottime").print_stats(25)
    head = ("cProfile, 64 B records through a client/server Connection pair in memory "
            "(send_data, receive_data, next_event -> DATA, next_event -> NEED_DATA), "
            "cryptography backend.\nMachine: %s, %d cores, Python %s. Without the profiler: "
            "%.0f records/s. %d records profiled.\n"
            % (platform.machine(), os.cpu_count(), platform.python_version(), plain,
               args.records))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(head + text.getvalue().replace(ROOT + os.sep, ""))
    print(head + text.getvalue().replace(ROOT + os.sep, ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cProfile of the 64 B record path (issue 10): send_data, receive_data, next_event until
NEED_DATA, on the cryptography backend, in memory. Writes the profile as text. With
--handshake: the mutual-auth handshake instead (constructors included, as side_by_side.py
times it), with the time beyond its own crypto calls counted apart.

  .venv/bin/python bench/profile_records.py [--records 200000] [--out bench/notes/profile_64B.txt]
  .venv/bin/python bench/profile_records.py --handshake [--out bench/notes/profile_handshake.txt]
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

from side_by_side import oss_handshake, oss_record, crypto_calls, crypto_ms, race   # noqa: E402
from ossuary_micro.crypto import get_backend         # noqa: E402


def _rate(fn, n):
    for _ in range(min(n, 1000)):
        fn()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def _profile(fn, n, out, head):
    def loop():
        for _ in range(n):
            fn()
    prof = cProfile.Profile()
    prof.runcall(loop)
    text = io.StringIO()
    st = pstats.Stats(prof, stream=text)
    st.sort_stats("tottime").print_stats(30)
    body = head + text.getvalue().replace(ROOT + os.sep, "")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(body)
    print(body)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--handshake", action="store_true", help="profile the mutual handshake")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    b = get_backend("cryptography")
    seeds = (bytes(range(1, 33)), bytes(range(33, 65)))
    keys = seeds + (b.ed25519_public(seeds[0]), b.ed25519_public(seeds[1]))
    machine = "Machine: %s, %d cores, Python %s." % (platform.machine(), os.cpu_count(),
                                                     platform.python_version())
    if args.handshake:
        out = args.out or os.path.join(ROOT, "bench", "notes", "profile_handshake.txt")
        n = 2000

        def one():
            oss_handshake(b, True, keys)
        calls, price = crypto_calls(b, True, keys)
        # Interleaved rounds, best of each (side_by_side.race), as side_by_side.py prices them.
        fns = dict(price)
        fns["handshake"] = one
        rates = race(fns, 0.2)
        hs = 1000.0 / rates.pop("handshake")
        cms = crypto_ms(calls, rates)
        head = ("cProfile, a mutual-auth handshake through a client/server Connection pair in "
                "memory (both constructors, the three messages), cryptography backend.\n%s "
                "Without the profiler: %.3f ms per handshake; its own crypto calls %s priced "
                "alone: %.3f ms (ratio %.2fx). %d handshakes profiled.\n"
                % (machine, hs, dict(sorted(calls.items())), cms, hs / cms, n))
        _profile(one, n, out, head)
        return 0
    out = args.out or os.path.join(ROOT, "bench", "notes", "profile_64B.txt")
    c, s, _ = oss_handshake(b, False, keys)
    one, _ = oss_record(c, s, 64)
    plain = _rate(one, args.records)
    head = ("cProfile, 64 B records through a client/server Connection pair in memory "
            "(send_data, receive_data, next_event -> DATA, next_event -> NEED_DATA), "
            "cryptography backend (the host record path, ossuary_micro/_record_host.py).\n"
            "%s Without the profiler: %.0f records/s. %d records profiled.\n"
            % (machine, plain, args.records))
    _profile(one, args.records, out, head)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Every single-byte corruption of each of the three handshake packets must end in a clean
# error and a recoverable or permanent state (spec section 11), never an exception, a hang
# or a wedged pair.
#
# CI runs a fixed sample (every offset, a few values each); `make fuzz` (OSSUARY_FUZZ=full)
# runs all offsets x all 255 other values: 432 x 255 = 110,160 cases.

import os

import pytest

from ossuary_micro import AUTH_SERVER, UNAUTH_SERVER
from tests.portable._pair import make_pair, CLIENT_SEED

FULL = os.environ.get("OSSUARY_FUZZ") == "full"

# (which sender, index of that sender's frame) for messages 1, 2, 3.
PACKETS = {1: ("client", 0), 2: ("server", 0), 3: ("client", 1)}

MODES = {
    "auth": dict(client_key=CLIENT_SEED, server_role=AUTH_SERVER),
    "unauth": dict(client_key=None, server_role=UNAUTH_SERVER),
}


def reference_frames(mode):
    link = make_pair(**MODES[mode]).run()
    assert link.established()
    return {1: link.frames["client"][0], 2: link.frames["server"][0],
            3: link.frames["client"][1]}


def harmless(packet, offset, orig, value):
    """Corruptions the protocol ignores by design: the header's reserved u16, the five
    reserved body bytes (spec 1.1, 2.2-2.4), and the top bit of an X25519 public key's last
    byte, which X25519 masks (RFC 7748 section 5)."""
    if offset in (6, 7) or 11 <= offset <= 15:
        return True
    if packet in (1, 2) and offset == 47 and (orig ^ value) == 0x80:
        return True
    return False


def values_for(orig):
    if FULL:
        return [v for v in range(256) if v != orig]
    return sorted({orig ^ 0x01, orig ^ 0x80, 0x00, 0xFF} - {orig})


def run_case(mode, packet, offset, value):
    sender, index = PACKETS[packet]
    link = make_pair(**MODES[mode])
    count = {"client": 0, "server": 0}
    done = [False]

    def tamper(name, frame):
        if name == sender and not done[0] and count[name] == index:
            frame[offset] = value
            done[0] = True
        count[name] += 1
        return frame
    link.tamper = tamper
    # One simulated second per round: handshake timeouts (4 s) and the reset limit (5)
    # bound every path, so 80 rounds always reach a final state.
    for _ in range(80):
        link.step()
        link.clock.now += 1000
        if link.established() or (link.client.closed and link.server.closed):
            break
    return link


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("packet", [1, 2, 3])
def test_single_byte_corruptions(mode, packet):
    frame = reference_frames(mode)[packet]
    cases = 0
    for offset in range(len(frame)):
        for value in values_for(frame[offset]):
            link = run_case(mode, packet, offset, value)
            cases += 1
            where = "packet %d offset %d value %#x" % (packet, offset, value)
            both_closed = link.client.closed and link.server.closed
            assert link.established() or both_closed, (where, link.events)
            errored = ("RESET" in link.events["client"] + link.events["server"]
                       or "CLOSED" in link.events["client"] + link.events["server"])
            if not harmless(packet, offset, frame[offset], value):
                assert errored, (where, link.events)
            if link.established():
                # Recovered (or never hurt): data flows both ways.
                link.send("client", b"ping")
                link.send("server", b"pong")
                assert link.received["server"][-1] == b"ping", where
                assert link.received["client"][-1] == b"pong", where
    print("packet %d (%s): %d corruptions checked" % (packet, mode, cases))
    assert cases >= len(frame) * (255 if FULL else 2)

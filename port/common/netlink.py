# Network glue shared by the ports: a TCP connection to the collector, and Wi-Fi for boards.
#
# MicroPython's socket API is the same on unix, ESP32 and Pico W. One quirk matters:
# socket.readinto(buf, n) on a *blocking* MicroPython socket waits until all n bytes arrived
# (the stream layer loops), which would stall a reader that asks for "up to n". A
# non-blocking socket returns what is there (or None), and ossuary_io polls before reading,
# so the socket is switched to non-blocking once connected.

import socket
import time

CONNECT_TIMEOUT_S = 10


def tcp_connect(host, port, timeout_s=CONNECT_TIMEOUT_S):
    """A connected, non-blocking TCP socket to host:port. Raises OSError (DNS failure,
    refused, timeout); the socket is closed on failure."""
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout_s)
        s.connect(addr)
        s.setblocking(False)
    except Exception:
        s.close()
        raise
    return s


def wifi_connect(ssid, password, log, timeout_ms=20000, network=None):
    """Join a Wi-Fi network in station mode (ESP32, Pico W); return the WLAN object.

    Returns at once if already connected. Raises OSError after timeout_ms. `network` is
    the network module (injectable for tests). The password is never logged.
    """
    if network is None:
        import network
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return wlan
    log("joining Wi-Fi %s" % ssid)
    wlan.connect(ssid, password)
    start = time.ticks_ms()
    while not wlan.isconnected():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            wlan.active(False)  # stop retrying in the background; the node backs off
            raise OSError("Wi-Fi %s: not connected after %d ms (status %s)"
                          % (ssid, timeout_ms, wlan.status()))
        time.sleep_ms(200)
    log("Wi-Fi up, address %s" % wlan.ifconfig()[0])
    return wlan

# Board glue for the Raspberry Pi Pico / Pico W (RP2040): UART or Wi-Fi TCP, on-die temperature.
#
# Random source: os.urandom. The rp2 port builds each byte from eight reads of the ring
# oscillator's RANDOMBIT register (rosc_random_u8(8) in ports/rp2/modos.c). Caveats (RP2040
# datasheet, ROSC chapter): the bit is not a certified entropy source, it is biased and
# correlated between reads when sampled quickly, there is no hardware whitening, and it stops
# being random if the ROSC is disabled or clocked externally (dormant mode). Keys are
# therefore best made once and kept (ossuary-deploy makes the node key on the host); the
# per-session randomness (X25519 ephemerals, nonces, challenge) still comes from this source.
#
# Pins (docs/boards.md): UART0 on GP0 (TX) / GP1 (RX) by default; ADC on GP26-GP28.
# The REPL is on USB, so UART0/UART1 are free for the link.

import os
import time
import machine
import micropython

from sensors import ConfigError
from mcu_sensors import Rp2040Temperature, AdcSensor
from boardkit import log, log_error, close_transport  # noqa: F401 (the node calls them)

random = os.urandom
clock = time.ticks_ms
sleep_ms = time.sleep_ms
# Readings kept until the collector acknowledges them (13 bytes each: 3.3 KiB: over a minute of readings at the default rates).
QUEUE_MAX = 256

# Default UART pins per UART id (Pico pinout): (tx, rx).
UART_PINS = {0: (0, 1), 1: (4, 5)}


def open_transport(cfg):
    """A machine.UART, or a TCP socket after joining Wi-Fi (Pico W). Raises OSError, ConfigError."""
    t = cfg["transport"]
    if t["type"] == "tcp":
        # Imported here: a UART node never loads the network code (on a board a loaded
        # module is heap).
        from netlink import tcp_connect, wifi_connect
        if "wifi" in cfg:
            wifi_connect(cfg["wifi"]["ssid"], cfg["wifi"]["password"], log)
        return tcp_connect(t["host"], t["port"])
    uid = t["id"]
    if uid not in UART_PINS:
        raise ConfigError("transport.id must be 0 or 1 on the RP2040")
    tx, rx = UART_PINS[uid]
    tx = t.get("tx", tx)
    rx = t.get("rx", rx)
    if cfg["repl_uart"]:
        # Ciphertext contains 0x03 bytes: without this, one would raise KeyboardInterrupt.
        micropython.kbd_intr(-1)
    # timeout: how long readinto waits for a first byte; timeout_char: gap that ends a read.
    # rxbuf holds a whole ServerHandshake (208 bytes) plus margin while we are busy.
    return machine.UART(uid, baudrate=t["baud"], tx=machine.Pin(tx), rx=machine.Pin(rx),
                        timeout=t["timeout_ms"], timeout_char=10, rxbuf=1024)


def make_sensors(cfgs, adc_class=None):
    """Sensors: "mcu_temp" (ADC input 4) and "adc" (a pin, GP26-GP28). Raises ConfigError.
    `adc_class` replaces machine.ADC in tests."""
    ADC = adc_class if adc_class is not None else machine.ADC
    if cfgs is None:
        cfgs = [{"type": "mcu_temp"}]
    out = []
    for s in cfgs:
        kind = s["type"]
        if kind == "mcu_temp":
            out.append(Rp2040Temperature(ADC(4), s.get("name", "mcu_temp")))
        elif kind == "adc":
            pin = s.get("pin")
            if pin not in (26, 27, 28):
                raise ConfigError("adc sensor pin must be 26, 27 or 28 on the RP2040")
            out.append(AdcSensor(ADC(pin), s.get("name", "adc%d" % (pin - 26)), s.get("unit", "V"),
                                 s.get("scale"), s.get("offset", 0.0)))
        else:
            raise ConfigError("sensor type %s is not available on the RP2040 (mcu_temp, adc)"
                              % kind)
    return out

# Board glue for ESP32-family boards: UART or Wi-Fi TCP, internal temperature, an ADC pin.
#
# Random source: os.urandom, which is esp_fill_random(): the hardware RNG, fed by RF noise
# while Wi-Fi or Bluetooth is on and by the internal SAR ADC/bootloader entropy otherwise
# (ESP-IDF "Random Number Generation"). Good enough for keys when the radio is on; with the
# radio off, Espressif's own guidance is that early-boot entropy is weaker.
#
# UART: UART0 carries the REPL. Use UART2 (default TX=17, RX=16) or UART1 with explicit
# pins for the link (docs/boards.md). If you do use the REPL UART, set "repl_uart": true.

import os
import time
import machine
import micropython
import esp32

from sensors import ConfigError
from mcu_sensors import Esp32Temperature, AdcSensor
from boardkit import log, log_error, close_transport  # noqa: F401 (the node calls them)

random = os.urandom
clock = time.ticks_ms
sleep_ms = time.sleep_ms
# Readings kept until the collector acknowledges them (13 bytes each: 6.5 KiB).
QUEUE_MAX = 512

# Default (tx, rx) pins per UART id on the classic ESP32 DevKit; UART1's defaults (9, 10)
# are the flash pins, so it needs explicit tx/rx in the config.
UART_PINS = {0: (1, 3), 2: (17, 16)}


def open_transport(cfg):
    """A machine.UART, or a TCP socket after joining Wi-Fi. Raises OSError, ConfigError."""
    t = cfg["transport"]
    if t["type"] == "tcp":
        # Imported here: a UART node never loads the network code (on a board a loaded
        # module is heap).
        from netlink import tcp_connect, wifi_connect
        if "wifi" not in cfg:
            raise ConfigError("tcp transport on the ESP32 needs a \"wifi\" section")
        wifi_connect(cfg["wifi"]["ssid"], cfg["wifi"]["password"], log)
        return tcp_connect(t["host"], t["port"])
    uid = t["id"]
    if uid > 2:
        raise ConfigError("transport.id must be 0, 1 or 2 on the ESP32")
    if uid not in UART_PINS and ("tx" not in t or "rx" not in t):
        raise ConfigError("UART%d needs transport.tx and transport.rx pins" % uid)
    tx, rx = UART_PINS.get(uid, (None, None))
    tx = t.get("tx", tx)
    rx = t.get("rx", rx)
    if cfg["repl_uart"] or uid == 0:
        # Ciphertext contains 0x03 bytes: without this, one would raise KeyboardInterrupt.
        micropython.kbd_intr(-1)
    return machine.UART(uid, baudrate=t["baud"], tx=tx, rx=rx,
                        timeout=t["timeout_ms"], timeout_char=10, rxbuf=1024)


def make_sensors(cfgs, adc_class=None, pin_class=None, esp32mod=None):
    """Sensors: "mcu_temp" (internal) and "adc" (an ADC1 pin: 32-39; ADC2 stops working
    while Wi-Fi is on). Raises ConfigError. The keyword arguments replace machine.ADC,
    machine.Pin and the esp32 module in tests."""
    ADC = adc_class if adc_class is not None else machine.ADC
    Pin = pin_class if pin_class is not None else machine.Pin
    mod = esp32mod if esp32mod is not None else esp32
    if cfgs is None:
        cfgs = [{"type": "mcu_temp"}]
    out = []
    for s in cfgs:
        kind = s["type"]
        if kind == "mcu_temp":
            out.append(Esp32Temperature(mod, s.get("name", "mcu_temp")))
        elif kind == "adc":
            pin = s.get("pin")
            if pin is None:
                raise ConfigError("adc sensor needs a pin")
            adc = ADC(Pin(pin))
            if hasattr(ADC, "ATTN_11DB"):
                adc.atten(ADC.ATTN_11DB)  # full 0-3.3 V range (about 0.15-2.45 V linear)
            out.append(AdcSensor(adc, s.get("name", "adc%d" % pin), s.get("unit", "V"),
                                 s.get("scale"), s.get("offset", 0.0)))
        else:
            raise ConfigError("sensor type %s is not available on the ESP32 (mcu_temp, adc)"
                              % kind)
    return out

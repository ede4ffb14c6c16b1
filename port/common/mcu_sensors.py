# The boards' sensors (RP2040 and ESP32 internal temperature, an ADC pin): each has `name`,
# `unit`, `digits` and `read() -> float`.
#
# The hardware (an ADC object, the esp32 module) is passed in, so this file imports nothing
# board-specific and its arithmetic is tested on the host with fakes. Apart from sensors.py
# (the unix port's simulated sensor), so that each board loads only the code it uses.

from sensors import ConfigError

# RP2040 datasheet 4.9.5: the internal sensor reads 0.706 V at 27 degC and falls by 1.721 mV
# per degree. ADC input 4, 12-bit, scaled to 16 bits by read_u16(); reference = 3.3 V supply.
RP2040_V27 = 0.706
RP2040_SLOPE = 0.001721


def rp2040_temp_c(raw_u16, vref=3.3):
    """Degrees Celsius from an RP2040 ADC4 read_u16() value (0..65535)."""
    volts = raw_u16 * vref / 65535
    return 27 - (volts - RP2040_V27) / RP2040_SLOPE


class Rp2040Temperature:
    """The RP2040's on-die temperature sensor. `adc` is machine.ADC(4) (or a fake with
    read_u16()). Accuracy is about +-2 degC at best and depends on the 3.3 V rail: it reads
    the die, which runs a few degrees above ambient."""

    def __init__(self, adc, name="mcu_temp", vref=3.3):
        self.adc = adc
        self.name = name
        self.unit = "C"
        self.digits = 2
        self.vref = vref

    def read(self):
        # Average a few conversions: single readings jitter by several LSB (about 1 degC).
        total = 0
        for _ in range(8):
            total += self.adc.read_u16()
        return rp2040_temp_c(total / 8, self.vref)


class Esp32Temperature:
    """The ESP32 family's internal sensor. `esp32mod` is the `esp32` module (or a fake).

    mcu_temperature() (degC) exists on the S2/S3/C3/C6; the original ESP32 only has
    raw_temperature(), in degrees Fahrenheit and uncalibrated (offsets of 20+ degrees are
    common): we convert it and say so in docs/boards.md.
    """

    def __init__(self, esp32mod, name="mcu_temp"):
        self.name = name
        self.unit = "C"
        self.digits = 1
        f = getattr(esp32mod, "mcu_temperature", None)
        if f is not None:
            self._read = f
            self._fahrenheit = False
        else:
            f = getattr(esp32mod, "raw_temperature", None)
            if f is None:
                raise ConfigError("this ESP32 firmware has no temperature sensor function")
            self._read = f
            self._fahrenheit = True

    def read(self):
        v = self._read()
        if self._fahrenheit:
            return (v - 32) / 1.8
        return float(v)


class AdcSensor:
    """An ADC pin: value = read_u16() * scale + offset. Default scale gives volts on a
    3.3 V reference. If the ADC object has read_uv() (ESP32: factory-calibrated) and no
    scale was configured, the calibrated microvolts are used instead."""

    def __init__(self, adc, name="adc", unit="V", scale=None, offset=0.0, digits=3):
        self.adc = adc
        self.name = name
        self.unit = unit
        self.digits = digits
        self.offset = offset
        self.use_uv = scale is None and hasattr(adc, "read_uv")
        self.scale = 3.3 / 65535 if scale is None else scale

    def read(self):
        if self.use_uv:
            return self.adc.read_uv() / 1000000 + self.offset
        return self.adc.read_u16() * self.scale + self.offset

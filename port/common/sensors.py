# Sensor objects for the node: each has `name`, `unit`, `digits` and `read() -> float`.
#
# This module holds what every node loads (ConfigError) and the unix port's simulated
# sensor; the boards' own sensors are in mcu_sensors.py, so that a node
# loads only the sensor code its board uses (on a board every loaded module is heap). The
# boards' board.py modules build these from the "sensors" list of the config.


class ConfigError(ValueError):
    """The node configuration is missing, unreadable or has an invalid field.

    str(e) is one line meant for the user; it never contains key material. Defined here, the
    module the node keeps, and re-exported by nodeconfig: the node drops nodeconfig (~5 KB
    of heap on a 32-bit board) once its config is read, and importing sensors or a board.py
    does not load it.
    """


class SimulatedTemperature:
    """A plausible room-temperature sensor for the unix port: a bounded random walk.

    Each read moves the value by up to +-step, pulled gently back toward `start`, and never
    leaves [lo, hi]. `random(n) -> bytes` supplies the randomness (os.urandom).
    """

    def __init__(self, random, name="sim_temp", start=21.0, step=0.05, lo=15.0, hi=30.0):
        if not lo <= start <= hi:
            raise ConfigError("simulated sensor: start must lie between min and max")
        self.random = random
        self.name = name
        self.unit = "C"
        self.digits = 2
        self.start = start
        self.step = step
        self.lo = lo
        self.hi = hi
        self.value = start

    def read(self):
        r = self.random(2)
        u = ((r[0] << 8) | r[1]) / 65535 * 2 - 1  # uniform in [-1, 1]
        # Mean reversion (2 % of the distance per step) keeps long runs near `start`.
        v = self.value + u * self.step + (self.start - self.value) * 0.02
        if v < self.lo:
            v = self.lo
        elif v > self.hi:
            v = self.hi
        self.value = v
        return v

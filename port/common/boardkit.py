# What the ESP32 and RP2040 glue share: console logging and closing a transport.
#
# The unix port has its own versions (it logs to stderr and only has file/socket objects).


def log(text):
    print("node: " + text)


def log_error(text):
    print("ossuary-node: " + text)


def close_transport(stream):
    # machine.UART has deinit(); sockets have close(). Closing a dead link must not raise.
    try:
        if hasattr(stream, "deinit"):
            stream.deinit()
        else:
            stream.close()
    except Exception:
        pass

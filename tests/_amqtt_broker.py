"""An amqtt MQTT broker for the fleet tests, run as `python -m tests._amqtt_broker PORT DIR`.

It listens on 127.0.0.1:PORT and checks every client with GatePlugin below:
  * DIR/users, if present: lines user:password; a client must then present one of them;
  * DIR/cert.pem and DIR/key.pem, if present: the listener speaks TLS with them;
  * DIR/hold, while it exists: clients whose id starts with "ossuary-" (the collectors) are
    refused (CONNACK "not authorized"), so a test can connect its subscriber to a restarted
    broker before the collectors come back, and see a collector retry a refusing broker.
Prints "ready" on stdout once the listener is up."""

import asyncio
import logging
import os
import sys
from dataclasses import dataclass, field

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin


class GatePlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        dir: str = field(default="")

    async def authenticate(self, *, session):
        d = self.context.config.dir
        if session.client_id and session.client_id.startswith("ossuary-") and \
                os.path.exists(os.path.join(d, "hold")):
            return False
        users = os.path.join(d, "users")
        if os.path.exists(users):
            with open(users) as f:
                pairs = {ln.strip().partition(":")[0]: ln.strip().partition(":")[2]
                         for ln in f if ln.strip()}
            return session.username in pairs and pairs[session.username] == (session.password or "")
        return True


def main():
    port, d = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(level=logging.WARNING)
    listener = {"type": "tcp", "bind": "127.0.0.1:%d" % port}
    if os.path.exists(os.path.join(d, "cert.pem")):         # TLS (tests/_fleet.make_tls)
        listener.update(ssl=True, certfile=os.path.join(d, "cert.pem"), keyfile=os.path.join(d, "key.pem"))
    config = {
        "listeners": {"default": listener},
        "plugins": {"tests._amqtt_broker.GatePlugin": {"dir": d}},
    }
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker = Broker(config, loop=loop)
    loop.run_until_complete(broker.start())
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(broker.shutdown())


if __name__ == "__main__":
    main()

"""Talk to the sensors example over NATS: publish readings, print alerts and stats.

Run the example first (see manifest.yaml), then: python examples/sensors/client.py
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats
from nats.aio.msg import Msg


async def main(url: str) -> None:
    nc = await nats.connect(url)

    async def on_alert(msg: Msg) -> None:
        print("alert", msg.subject, msg.data.decode())

    await nc.subscribe("alerts.>", cb=on_alert)
    for sensor, reading in [("kitchen", "21.5"), ("kitchen", "22.5"), ("attic", "31.2")]:
        await nc.publish(f"sensors.{sensor}.temperature", reading.encode())
    await nc.flush()
    await asyncio.sleep(0.2)
    for ask in (b"kitchen", b""):
        reply = await nc.request("stats.get", ask, timeout=2)
        print("stats.get", ask.decode() or "(all)", "->", json.loads(reply.data))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"))

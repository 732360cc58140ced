#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A TCP proxy that delays every chunk by DELAY ms in each direction (netem's
`delay` where the kernel has no netem qdisc).

usage: fleet_delay.py LISTEN_ADDR:PORT TARGET_ADDR:PORT DELAY_MS READY_FILE

Each accepted connection gets one to TARGET; what is read on one side is written
to the other DELAY_MS after it was read, in order, and so is a half-close (EOF).
Throughput is not limited, only latency added: like `tc qdisc ... netem delay`,
applied to both directions (RTT + 2 x DELAY).  The delay is on from the start;
SIGUSR1 sets it to 0 and SIGUSR2 back to DELAY_MS (for chunks read from then on).
A refused or reset connection to TARGET closes the client's (the client sees the
peer gone, as it would without the proxy).  READY_FILE is written once listening.
"""
import asyncio, signal, sys

listen, target, delay_ms, ready = sys.argv[1:5]
lhost, lport = listen.rsplit(":", 1)
thost, tport = target.rsplit(":", 1)
DELAY = [int(delay_ms) / 1000.0]
FULL = DELAY[0]


async def pump(reader, writer):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def out():
        while True:
            at, data = await q.get()
            d = at - loop.time()
            if d > 0:
                await asyncio.sleep(d)
            if data is None:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except OSError:
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                return
    t = asyncio.ensure_future(out())
    try:
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            q.put_nowait((loop.time() + DELAY[0], data or None))
            if not data:
                break
        await t
    finally:
        t.cancel()


async def handle(cr, cw):
    try:
        tr, tw = await asyncio.wait_for(asyncio.open_connection(thost, int(tport)), 10)
    except (OSError, asyncio.TimeoutError):
        cw.close()
        return
    try:
        await asyncio.gather(pump(cr, tw), pump(tr, cw))
    finally:
        for w in (tw, cw):
            try:
                w.close()
            except OSError:
                pass


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: DELAY.__setitem__(0, 0.0))
    loop.add_signal_handler(signal.SIGUSR2, lambda: DELAY.__setitem__(0, FULL))
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    srv = await asyncio.start_server(handle, lhost, int(lport), backlog=256)
    with open(ready, "w") as f:
        f.write("listening\n")
    await stop
    srv.close()


asyncio.run(main())

#!/usr/bin/python3
"""rtproxy.py - a TCP proxy that adds latency and counts round trips.

    /usr/bin/python3 rtproxy.py --target HOST:PORT [--delay MS] [--log FILE]
                                [--lifetime SECONDS]

Listens on 127.0.0.1 port 0, prints the port on stdout as one line once it
is listening, and forwards every connection to the target.  Each chunk read
from either side is written to the other side MS milliseconds after it
arrived (order kept), so a round trip costs 2 * MS more than on loopback:
a user-space stand-in for netem, which this kernel lacks.

For each connection it counts flights: a flight is a run of chunks in one
direction not interrupted by a chunk in the other direction.  A client that
waits for a reply before it speaks again starts a new client flight each
time; a client that pipelines does not.  When the connection ends, one JSON
line goes to the log file:

  {"conn": N, "client_flights": C, "server_flights": S,
   "client_bytes": ..., "server_bytes": ..., "client_chunks": ...,
   "server_chunks": ..., "seconds": ...}

Round trips of a session = 1 (the TCP handshake) + server_flights: every
server flight is something the client waited for (the greeting, each reply
or group of replies, the TLS server hello).

Also importable: Proxy(target, delay_ms, log) starts it in a subprocess.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

# Bytes read per chunk; a bound on what the proxy holds per read.
CHUNK = 65536


class Counter:
    def __init__(self, conn):
        self.conn = conn
        self.last = None
        self.flights = {"client": 0, "server": 0}
        self.bytes = {"client": 0, "server": 0}
        self.chunks = {"client": 0, "server": 0}
        self.t0 = time.monotonic()

    def saw(self, side, n):
        if side != self.last:
            self.flights[side] += 1
            self.last = side
        self.bytes[side] += n
        self.chunks[side] += 1

    def record(self):
        return {"conn": self.conn, "client_flights": self.flights["client"],
                "server_flights": self.flights["server"],
                "client_bytes": self.bytes["client"], "server_bytes": self.bytes["server"],
                "client_chunks": self.chunks["client"], "server_chunks": self.chunks["server"],
                "seconds": round(time.monotonic() - self.t0, 4)}


async def pump(side, reader, writer, counter, delay):
    """Read from one side; deliver each chunk delay seconds after it came."""
    queue = asyncio.Queue()

    async def deliver():
        while True:
            t, data = await queue.get()
            wait = t + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except (OSError, RuntimeError):
                return

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            counter.saw(side, len(data))
            queue.put_nowait((time.monotonic(), data))
    except (OSError, asyncio.IncompleteReadError):
        pass
    queue.put_nowait((time.monotonic(), None))
    await task


async def serve(args, host, port):
    nconn = [0]
    delay = args.delay / 1000.0

    async def handle(creader, cwriter):
        nconn[0] += 1
        counter = Counter(nconn[0])
        try:
            sreader, swriter = await asyncio.open_connection(host, port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump("client", creader, swriter, counter, delay),
                             pump("server", sreader, cwriter, counter, delay))
        for w in (cwriter, swriter):
            w.close()
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps(counter.record()) + "\n")

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    sys.stdout.write("%d\n" % server.sockets[0].getsockname()[1])
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay", type=float, default=0.0, help="one-way delay in ms")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(max(1, int(args.lifetime)))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(serve(args, host or "127.0.0.1", int(port)))


class Proxy:
    """The proxy in a subprocess: Proxy(target_port, delay_ms, logfile)."""

    def __init__(self, target_port, delay_ms, log, lifetime=600):
        self.log = log
        self.p = subprocess.Popen(
            ["/usr/bin/python3", os.path.abspath(__file__), "--target",
             "127.0.0.1:%d" % target_port, "--delay", str(delay_ms), "--log", log,
             "--lifetime", str(lifetime)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
        line = self.p.stdout.readline()
        if not line.strip():
            raise RuntimeError("rtproxy did not start")
        self.port = int(line)

    def records(self, wait_for=0, limit=5.0):
        """The connection records so far (waiting up to limit seconds until
        there are at least wait_for)."""
        deadline = time.monotonic() + limit
        while True:
            recs = []
            if os.path.exists(self.log):
                with open(self.log) as f:
                    recs = [json.loads(ln) for ln in f if ln.strip()]
            if len(recs) >= wait_for or time.monotonic() > deadline:
                return recs
            time.sleep(0.02)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


if __name__ == "__main__":
    main()

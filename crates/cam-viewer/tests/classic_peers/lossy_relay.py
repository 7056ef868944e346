#!/usr/bin/env python3
"""A UDP relay that drops a seeded fraction of what a client sends to a server, and passes the
server's replies back untouched. For camstream's classic-mode loss tests.

Prints {"type":"ready","port":P} once listening, and a summary line when it gets SIGTERM or
its time is up.
"""

import argparse
import json
import random
import select
import signal
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--to", required=True, help="HOST:PORT of the server")
    p.add_argument("--drop", type=float, default=0.02, help="fraction of client datagrams lost")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=120)
    args = p.parse_args()
    host, port = args.to.rsplit(":", 1)
    rng = random.Random(args.seed)

    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    front.bind(("127.0.0.1", 0))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    back.connect((host, int(port)))

    stats = {"type": "summary", "forwarded": 0, "dropped": 0, "replies": 0}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    print(json.dumps({"type": "ready", "port": front.getsockname()[1]}), flush=True)

    client = None
    end = time.monotonic() + args.max_seconds
    while not stopping and time.monotonic() < end:
        try:
            ready, _, _ = select.select([front, back], [], [], 0.1)
        except InterruptedError:
            continue
        for sock in ready:
            if sock is front:
                data, client = front.recvfrom(65535)
                if rng.random() < args.drop:
                    stats["dropped"] += 1
                else:
                    back.send(data)
                    stats["forwarded"] += 1
            else:
                try:
                    data = back.recv(65535)
                except ConnectionRefusedError:
                    continue
                if client is not None:
                    front.sendto(data, client)
                    stats["replies"] += 1
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    sys.exit(main())

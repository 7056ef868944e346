#!/usr/bin/env python3
"""A client speaking the original Python example's protocol, written for camstream's tests from
the protocol's description (it is not the example's code).

Each image goes either as one datagram, or as a length header (a C long as struct.pack('l')
writes it: 8 bytes little-endian, or 4 on Windows) followed by the bytes in chunks of 1024, the
last one shorter. Then the client blocks on a reply, like the original, but with a socket
timeout so that a test can count what never came. Prints one JSON line at the end.
"""

import argparse
import json
import socket
import struct
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("files", nargs="+", help="images to send, cycled in the order given")
    p.add_argument("--count", type=int, help="images to send (default: each file once)")
    p.add_argument("--one-datagram", action="store_true", help="each image in one datagram")
    p.add_argument("--header-bytes", type=int, choices=(4, 8), default=8)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument(
        "--empty-after",
        action="store_true",
        help="like the original loop (len // chunk + 1 sends): an empty datagram after a "
        "length that is a multiple of the chunk size",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to block on each reply")
    args = p.parse_args()

    images = []
    for name in args.files:
        with open(name, "rb") as f:
            images.append(f.read())
    count = args.count if args.count is not None else len(images)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.settimeout(args.timeout)
    dest = (args.host, args.port)
    header_format = "<q" if args.header_bytes == 8 else "<i"

    texts = {}
    timeouts = 0
    datagrams = 0
    slowest = 0.0
    started = time.monotonic()
    for n in range(count):
        image = images[n % len(images)]
        if args.one_datagram:
            sock.sendto(image, dest)
            datagrams += 1
        else:
            sock.sendto(struct.pack(header_format, len(image)), dest)
            datagrams += 1
            if args.empty_after:
                # len // chunk + 1 sends: the last one is empty when the length divides evenly.
                sends = len(image) // args.chunk + 1
            else:
                sends = -(-len(image) // args.chunk)
            for i in range(sends):
                sock.sendto(image[i * args.chunk:(i + 1) * args.chunk], dest)
                datagrams += 1
        sent_at = time.monotonic()
        try:
            reply, _ = sock.recvfrom(65535)
        except socket.timeout:
            timeouts += 1
            continue
        slowest = max(slowest, time.monotonic() - sent_at)
        text = reply.decode("utf-8", "replace")
        texts[text] = texts.get(text, 0) + 1

    print(
        json.dumps(
            {
                "type": "summary",
                "frames": count,
                "datagrams": datagrams,
                "replies": sum(texts.values()),
                "timeouts": timeouts,
                "texts": texts,
                "slowest_reply_ms": round(slowest * 1000, 1),
                "elapsed_s": round(time.monotonic() - started, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())

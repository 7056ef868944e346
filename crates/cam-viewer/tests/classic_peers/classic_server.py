#!/usr/bin/env python3
"""A threaded server speaking the original Python example's protocol, written for camstream's
tests from the protocol's description (it is not the example's code).

Image port: a datagram of 4 or 8 bytes is a length header (little-endian C long); the server then
gathers datagrams until it has that many bytes. Any other datagram is a whole image. Each image
is answered "get message!!!". Message port: a JSON datagram is printed and answered "get the msg".
Everything it sees is printed as JSON lines on stdout, images as their length and SHA-256.
"""

import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time

print_lock = threading.Lock()


def emit(obj):
    with print_lock:
        print(json.dumps(obj), flush=True)


def serve_images(sock):
    while True:
        data, sender = sock.recvfrom(65535)
        if len(data) in (4, 8):
            length = struct.unpack("<q" if len(data) == 8 else "<i", data)[0]
            parts, have = [], 0
            while have < length:
                chunk, _ = sock.recvfrom(65535)
                parts.append(chunk)
                have += len(chunk)
            image = b"".join(parts)
            form = "chunked"
        else:
            image, form = data, "one-datagram"
        emit(
            {
                "type": "image",
                "form": form,
                "len": len(image),
                "sha256": hashlib.sha256(image).hexdigest(),
                "from": "%s:%d" % sender[:2],
            }
        )
        sock.sendto(b"get message!!!", sender)


def serve_messages(sock):
    while True:
        data, sender = sock.recvfrom(65535)
        try:
            msg = json.loads(data.decode("utf-8"))
        except ValueError:
            emit({"type": "bad-msg", "len": len(data)})
            sock.sendto(b"not json", sender)
            continue
        emit({"type": "msg", "msg": msg, "from": "%s:%d" % sender[:2]})
        sock.sendto(b"get the msg", sender)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-seconds", type=float, default=120, help="exit after this long")
    args = p.parse_args()
    images = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    images.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    images.bind(("127.0.0.1", 0))
    messages = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    messages.bind(("127.0.0.1", 0))
    for target, sock in ((serve_images, images), (serve_messages, messages)):
        threading.Thread(target=target, args=(sock,), daemon=True).start()
    emit(
        {
            "type": "ready",
            "image_port": images.getsockname()[1],
            "msg_port": messages.getsockname()[1],
        }
    )
    time.sleep(args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())

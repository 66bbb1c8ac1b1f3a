#!/usr/bin/python3
"""connectproxy.py - a small HTTP CONNECT proxy for postern's tests.

    /usr/bin/python3 connectproxy.py --log FILE [--lifetime SECONDS]

Listens on 127.0.0.1, port 0; prints the port as one line once
listening.  Each CONNECT host:port is recorded as one line "CONNECT
host:port" in FILE and tunnelled, but only to loopback (127.0.0.1 for
"localhost"); anything else is answered 403.  Serves until killed or the
lifetime (default 120 s) is over.
"""

import argparse
import os
import socket
import threading


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, log):
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        chunk = conn.recv(4096)
        if not chunk:
            conn.close()
            return
        head += chunk
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    with open(log, "a") as f:
        f.write(line.rsplit(" ", 1)[0] + "\n")
    if len(parts) != 3 or parts[0] != "CONNECT":
        conn.sendall(b"HTTP/1.1 405 CONNECT only\r\n\r\n")
        conn.close()
        return
    host, _, port = parts[1].rpartition(":")
    if host not in ("localhost", "127.0.0.1"):
        conn.sendall(b"HTTP/1.1 403 loopback only\r\n\r\n")
        conn.close()
        return
    try:
        up = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    except OSError:
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        conn.close()
        return
    up.settimeout(None)
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
    pipe(conn, up)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)
    threading.Timer(a.lifetime, lambda: os._exit(0)).start()
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, a.log), daemon=True).start()


if __name__ == "__main__":
    main()

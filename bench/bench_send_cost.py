"""What one `send()` of a small frame over loopback TCP costs the sender, on this machine (issue 17).

Run: .venv/bin/python bench/bench_send_cost.py [--sends 20000] [--sockets 10]

An instance pays one `send()` system call per socket per delivery; over loopback the kernel also runs the
receiver's side of TCP in the sender's call, and wakes the receiver if it sleeps. This measures the
sender's CPU per 100-byte send to a reader in another process (epoll, like the load generator):
- back to back: the reader is mostly awake (a busy server's fan-out);
- paced (`--gap`, default 1 ms between sends): the reader sleeps before each one (a quiet server's);
and, to subtract, the same pacing with no send (`time.sleep` itself costs CPU on a VM). Compare machines
with it: the figures in docs/benchmarks.md ("session 8") came from a VM where waking a sleeping
reader cost more than the send itself.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time


def reader(port: int, sockets: int, expect: int) -> None:
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    poll = select.epoll()
    for c in conns:
        c.setblocking(False)
        poll.register(c.fileno(), select.EPOLLIN)
    by_fd = {c.fileno(): c for c in conns}
    got = 0
    while got < expect:
        for fd, _ in poll.poll():
            data = by_fd[fd].recv(65536)
            if not data:
                return
            got += len(data)


def run(sends: int, sockets: int, gap: float, send: bool) -> float:
    """Sender CPU µs per iteration (a send, and the pause when `gap`)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(sockets)
    port = server.getsockname()[1]
    payload = b"x" * 100
    pid = os.fork()
    if pid == 0:
        if send:
            reader(port, sockets, sends * len(payload))
        else:
            [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
        os._exit(0)
    conns = [server.accept()[0] for _ in range(sockets)]
    for c in conns:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.process_time()
    for i in range(sends):
        if send:
            conns[i % sockets].send(payload)
        if gap:
            time.sleep(gap)
    cpu = time.process_time() - started
    for c in conns:
        c.close()
    server.close()
    os.waitpid(pid, 0)
    return cpu / sends * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sends", type=int, default=20000)
    ap.add_argument("--sockets", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.001, help="seconds between paced sends")
    args = ap.parse_args()
    busy = run(args.sends, args.sockets, 0.0, True)
    paced = run(args.sends // 4, args.sockets, args.gap, True)
    pause = run(args.sends // 4, args.sockets, args.gap, False)
    print(f"send, reader awake (back to back):   {busy:6.1f} µs of sender CPU")
    print(f"send, reader asleep (paced {args.gap * 1e3:g} ms):    {paced - pause:6.1f} µs "
          f"({paced:.1f} with the pause, the pause alone {pause:.1f})")


if __name__ == "__main__":
    main()

"""A TCP proxy on loopback that adds a fixed latency to the bytes it carries.

Put it between a client and an emulator to give every RPC the round trip of a
real network: each chunk the server sends is delivered `delay` seconds after
it arrived, in order, without holding up the chunks behind it (a latency, not
a bandwidth limit). The fault tests use it to spread a batch's commits over
seconds; the benchmark uses it for its production-latency profile.

`close` cuts every connection at once, as a network partition would.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

_CHUNK_BYTES = 65536


class DelayProxy:
    """Listens on a free loopback port (`host`) and forwards to `upstream` ("host:port")."""

    def __init__(self, upstream: str, delay: float, *, both_ways: bool = False) -> None:
        """`delay` is added to each server-to-client chunk, and to each client-to-server one if `both_ways`."""
        if delay < 0:
            raise ValueError(f"delay {delay} is negative")
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._response_delay = delay
        self._request_delay = delay if both_ways else 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="delay-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, sink, delay in ((client, server, self._request_delay), (server, client, self._response_delay)):
                threading.Thread(target=_pump, args=(source, sink, delay), daemon=True, name="delay-proxy-pump").start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Copies `source` to `sink` until either end closes; with a delay, a second thread sends each chunk when due."""
    due: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
    if delay:
        threading.Thread(target=_send_when_due, args=(due, sink), daemon=True, name="delay-proxy-send").start()
    try:
        while chunk := source.recv(_CHUNK_BYTES):
            if delay:
                due.put((time.monotonic() + delay, chunk))
            else:
                sink.sendall(chunk)
    except OSError:
        pass
    if delay:
        due.put(None)  # the sender closes `sink` after the last chunk
    else:
        _shut(sink)
    _shut(source)


def _send_when_due(due: queue.SimpleQueue, sink: socket.socket) -> None:
    try:
        while (item := due.get()) is not None:
            at, chunk = item
            time.sleep(max(0.0, at - time.monotonic()))  # the injected latency itself, not a wait for anything
            sink.sendall(chunk)
    except OSError:
        pass
    _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)

"""A TCP proxy on loopback that adds a fixed latency to the bytes it carries.

Put it between a client and an emulator to give every RPC the round trip of a
real network: each chunk the server sends is delivered `delay` seconds after
it arrived, in order, without holding up the chunks behind it (a latency, not
a bandwidth limit). The fault tests use it to spread a batch's commits over
seconds; the benchmark uses it for its production-latency profile.

`close` cuts every connection at once, as a network partition would.

With a `CommitGate`, the proxy also reads the gRPC calls a client makes (HTTP/2
frames, their headers decoded with HPACK) and lets only the first Datastore
Commits through: from the next Commit on, that connection's requests wait
until the test calls `release` (or closes the proxy). A test that needs "some
transactions committed, the others not yet" makes it happen this way instead
of hoping the machine is slow enough.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import Callable

_CHUNK_BYTES = 65536


class DelayProxy:
    """Listens on a free loopback port (`host`) and forwards to `upstream` ("host:port")."""

    def __init__(self, upstream: str, delay: float, *, both_ways: bool = False, gate: CommitGate | None = None) -> None:
        """`delay` is added to each server-to-client chunk, and to each client-to-server one if `both_ways`.

        With `gate`, requests pass the gate (see CommitGate) before their delay.
        """
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
        self._gate = gate
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
            gate = self._gate.connection() if self._gate is not None else None
            pumps = ((client, server, self._request_delay, gate), (server, client, self._response_delay, None))
            for source, sink, delay, gated in pumps:
                threading.Thread(
                    target=_pump, args=(source, sink, delay, gated), daemon=True, name="delay-proxy-pump"
                ).start()

    def close(self) -> None:
        """Cuts every connection; requests a gate still holds are dropped, as a partition drops them."""
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


def _pump(source: socket.socket, sink: socket.socket, delay: float, gate: _GatedConnection | None) -> None:
    """Copies `source` to `sink` until either end closes; with a delay, a second thread sends each chunk when due."""
    due: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
    if delay:
        threading.Thread(target=_send_when_due, args=(due, sink), daemon=True, name="delay-proxy-send").start()

    def forward(chunk: bytes) -> None:
        if delay:
            due.put((time.monotonic() + delay, chunk))
        else:
            sink.sendall(chunk)

    try:
        while chunk := source.recv(_CHUNK_BYTES):
            if gate is not None:
                gate.feed(chunk, forward)
            else:
                forward(chunk)
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


# HTTP/2 (RFC 9113): the client's preface, the frame header, and the frame types and flags the gate reads.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _CONTINUATION = 0x0, 0x1, 0x9
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
_COMMIT_PATH = "/google.datastore.v1.Datastore/Commit"


class CommitGate:
    """Lets the first `let_through` Datastore Commits of the proxied clients pass, then holds the rest.

    From the first Commit over the limit, everything its connection sends
    waits (the rest of the Commits already let through excepted), so that no
    later request reaches Datastore before `release`. `holding` is set once
    a Commit is held: the test knows the sync got that far.
    """

    def __init__(self, let_through: int) -> None:
        self._left = let_through
        self._lock = threading.Lock()
        self._connections: list[_GatedConnection] = []
        self._released = False
        self.holding = threading.Event()

    def connection(self) -> _GatedConnection:
        with self._lock:
            connection = _GatedConnection(self)
            self._connections.append(connection)
            return connection

    def admit_commit(self) -> bool:
        """Whether one more Commit may pass."""
        with self._lock:
            if self._released or self._left > 0:
                self._left -= 1
                return True
            self.holding.set()
            return False

    def release(self) -> None:
        """Sends what every connection holds, in order, and lets everything through from now on."""
        with self._lock:
            self._released = True
            connections = list(self._connections)
        for connection in connections:
            connection.release()


class _GatedConnection:
    """One client connection's requests, read frame by frame (HTTP/2, as gRPC sends them)."""

    def __init__(self, gate: CommitGate) -> None:
        import hpack  # only a gated proxy needs it (the benchmark's latency proxy does not)

        self._gate = gate
        self._lock = threading.Lock()
        self._unread = b""
        self._preface_seen = False
        self._decoder = hpack.Decoder()
        self._decoder.max_allowed_table_size = 1 << 20  # whatever size the server allowed the client
        self._block: list[bytes] = []  # a header block's frames, until END_HEADERS
        self._let_through: set[int] = set()  # Commits admitted whose request has not ended
        self._held: list[bytes] | None = None  # None: not holding
        self._forward: Callable[[bytes], None] | None = None

    def feed(self, chunk: bytes, forward: Callable[[bytes], None]) -> None:
        with self._lock:
            self._forward = forward
            self._unread += chunk
            if not self._preface_seen:
                if len(self._unread) < len(_PREFACE):
                    return
                forward(self._unread[: len(_PREFACE)])
                self._unread, self._preface_seen = self._unread[len(_PREFACE) :], True
            while len(self._unread) >= 9:
                length = int.from_bytes(self._unread[:3], "big")
                if len(self._unread) < 9 + length:
                    return
                frame, self._unread = self._unread[: 9 + length], self._unread[9 + length :]
                self._frame(frame, forward)

    def _frame(self, frame: bytes, forward: Callable[[bytes], None]) -> None:
        kind, flags = frame[3], frame[4]
        stream = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
        if kind == _DATA and stream in self._let_through:
            forward(frame)  # the rest of a Commit already let through, even while holding
            if flags & _END_STREAM:
                self._let_through.discard(stream)
            return
        if kind in (_HEADERS, _CONTINUATION):
            self._block.append(frame)
            if not flags & _END_HEADERS:
                return
            frames, self._block = self._block, []
            path = self._path(frames)  # decoded even while holding: HPACK state runs on
            if self._held is None and path == _COMMIT_PATH:
                if self._gate.admit_commit():
                    if not frames[0][4] & _END_STREAM:
                        self._let_through.add(stream)
                else:
                    self._held = []
            self._send(b"".join(frames), forward)
            return
        self._send(frame, forward)

    def _send(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            forward(data)

    def _path(self, frames: list[bytes]) -> str | None:
        block = b"".join(_fragment(frame) for frame in frames)
        for name, value in self._decoder.decode(block, raw=True):
            if name == b":path":
                return value.decode(errors="replace")
        return None

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held and self._forward is not None:
                for data in held:
                    self._forward(data)


def _fragment(frame: bytes) -> bytes:
    """The header block fragment of a HEADERS or CONTINUATION frame, without padding or priority."""
    kind, flags, payload = frame[3], frame[4], frame[9:]
    if kind != _HEADERS:
        return payload
    pad = 0
    if flags & _PADDED:
        pad, payload = payload[0], payload[1:]
    if flags & _PRIORITY:
        payload = payload[5:]
    return payload[: len(payload) - pad]

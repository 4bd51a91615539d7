"""A real redis-server on a free loopback port, for the dscache tests and the local stack.

Started like the emulators (tools/emulators.py): its own process group, a
free port, waited for until it answers PING, stopped with everything it
started. It keeps nothing on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

import redis

from tools.emulators import START_TIMEOUT_SECONDS, EmulatorUnavailable, free_port, wait_until


class RedisServer:
    """redis-server (Debian's package `redis-server`) on 127.0.0.1; `address` is its host:port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="buildsync-redis-")
        self._process: subprocess.Popen | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmulatorUnavailable("redis-server is not installed (Debian package redis-server)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = open(os.path.join(self._dir, "redis.log"), "wb")
        self._process = subprocess.Popen(
            [*args, "--dir", self._dir], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            wait_until(self._healthy, START_TIMEOUT_SECONDS, f"redis-server on {self.address}", interval=0.05)
        except TimeoutError:
            self.stop()
            raise EmulatorUnavailable(f"redis-server did not start on {self.address}") from None
        return self

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise EmulatorUnavailable(f"redis-server exited with {self._process.returncode}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=15)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

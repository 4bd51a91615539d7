"""A real redis-server on a free loopback port, for the dscache tests and the local stack.

Started like the emulators (tools/emulators.py): its own process group, a
free port, waited for until it answers PING, stopped with everything it
started. It keeps nothing on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import redis

from tools.emulators import (
    START_TIMEOUT_SECONDS,
    EmulatorUnavailable,
    free_port,
    start_process_group,
    stop_process_group,
    wait_until,
)


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
        self._process = start_process_group([*args, "--dir", self._dir], os.path.join(self._dir, "redis.log"))
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
            stop_process_group(self._process)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

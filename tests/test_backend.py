"""Which hostnames are loopback (plaintext, no token), for both transports."""

import pytest
from buildsync.prpc import is_loopback_address


@pytest.mark.parametrize(
    "hostname, loopback",
    [
        ("localhost:8080", True),
        ("localhost:1", True),
        ("127.0.0.1:50051", True),
        ("127.5.5.5:80", True),
        ("127.255.255.254:9", True),
        ("[::1]:50051", True),
        ("localhost", False),
        ("127.0.0.1", False),
        ("localhost:", False),
        ("localhost:http", False),
        ("example.com:443", False),
        ("example.com", False),
        ("10.0.0.1:80", False),
        ("192.168.1.1:80", False),
        ("128.0.0.1:80", False),
        ("::1", False),
        ("[::1]", False),
        (":8080", False),
        ("", False),
        ("localhost.example.com:443", False),
    ],
)
def test_is_loopback_address(hostname, loopback):
    assert is_loopback_address(hostname) is loopback

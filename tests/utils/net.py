"""Loopback ports for servers the tests start."""

import socket


def free_port() -> int:
    """A port that was free a moment ago (the kernel picks it; a race is possible but rare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

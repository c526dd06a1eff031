"""Loopback provider emulators: real HTTP servers on 127.0.0.1 that speak each provider's native wire format."""

from tests.emulators.server import Emulator, Reply, Request

__all__ = ["Emulator", "Reply", "Request"]

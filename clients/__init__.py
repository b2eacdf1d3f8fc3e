"""Clients of the Kinko HTTP API (they speak only HTTP to the server)."""

from clients.api import KinkoClient, KinkoHTTPError

__all__ = ["KinkoClient", "KinkoHTTPError"]

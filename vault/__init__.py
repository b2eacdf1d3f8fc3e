"""Kinko: an encrypted, stage-aware document vault for public procurement."""

__version__ = "0.1.0"

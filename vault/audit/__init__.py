"""The audit log: every request appended before it is answered (fail closed)."""

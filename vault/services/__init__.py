"""Use cases of the vault.

Each runs inside one audit scope and asks the guard for every decision.
"""

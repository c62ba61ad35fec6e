"""Helpers shared by the reliability tests: the ledger check, fault harness, recorded figures."""

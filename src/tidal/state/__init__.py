"""Operator state snapshots and checkpoint storage."""

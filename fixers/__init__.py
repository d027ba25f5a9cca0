"""Remediation: turn failing checks into one confirmed, guarded plan."""

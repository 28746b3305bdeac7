"""reconciliation owns these tables (DESIGN §1)."""

"""sagas owns these tables (DESIGN §1)."""

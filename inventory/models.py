"""inventory owns these tables (DESIGN §1)."""

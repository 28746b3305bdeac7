"""payments owns these tables (DESIGN §1)."""

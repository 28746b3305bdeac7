"""orders owns these tables (DESIGN §1)."""

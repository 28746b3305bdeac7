"""backoffice owns these tables (DESIGN §1)."""

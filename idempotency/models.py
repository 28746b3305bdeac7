"""idempotency owns these tables (DESIGN §1)."""

"""Suite-wide fixtures. Tests run on real PostgreSQL and Redis (config.settings.test)."""

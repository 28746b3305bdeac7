"""Suite-wide fixtures. Tests run on real PostgreSQL and Redis (config.settings.test).

Fixtures that several areas share live in tests/fixtures/ and are registered
here; fixtures of one area live in that area's own conftest.py.
"""

pytest_plugins = [
    "tests.fixtures.psp",
    "tests.fixtures.worker",
]

"""The sandbox keeps its own database: none of its tables may appear in Concord's."""

import pytest
from django.conf import settings
from django.db import connection


def test_the_sandbox_is_not_a_concord_app():
    assert not any(app.startswith("sandbox_psp") for app in settings.INSTALLED_APPS)


@pytest.mark.django_db
def test_concord_database_has_no_sandbox_tables(psp):
    assert [t for t in connection.introspection.table_names() if t.startswith("sandbox_psp")] == []
    assert psp.database_url.rsplit("/", 1)[1] != settings.DATABASES["default"]["NAME"]

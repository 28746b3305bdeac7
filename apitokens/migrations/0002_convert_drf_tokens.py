"""Convert the plaintext tokens of DRF's authtoken app (Concord's API auth before
apitokens) into digests, then delete the plaintext rows: clients keep their tokens,
and the database no longer holds them. The emptied authtoken_token table is left for
the operator to drop (it belongs to an app that is no longer installed).

Not reversible into plaintext: going back means issuing new tokens."""

import hashlib

from django.db import migrations

LEGACY_TABLE = "authtoken_token"


def convert_legacy_tokens(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [LEGACY_TABLE])
        if cursor.fetchone()[0] is None:
            return  # a database created after the switch
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")  # noqa: S608 - constant name
        rows = cursor.fetchall()
    ApiToken = apps.get_model("apitokens", "ApiToken")
    ApiToken.objects.bulk_create(
        [
            ApiToken(
                user_id=user_id,
                prefix=key[:8],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
            )
            for key, user_id, created in rows
        ],
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")  # noqa: S608 - constant name


class Migration(migrations.Migration):
    dependencies = [("apitokens", "0001_initial")]

    operations = [migrations.RunPython(convert_legacy_tokens, migrations.RunPython.noop, elidable=False)]

"""Provider idempotency keys unique by construction (issue 13, item 4).

The charge key used to be "<payment id>:charge" and a refund sent its caller's key
("<payment id>:refund:<n>", "saga:<run>:<step>"...): a database restored or recreated
against the same provider account replayed old charges. New rows get a random UUID.

Existing rows are backfilled with the key they already sent, not a new one: a
payment or refund still pending may be retried, and the retry must replay at the
provider, not charge or refund a second time.
"""

import payments.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_provider_attempts_for_charges_without_payment")]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="provider_key",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="refund",
            name="provider_key",
            field=models.CharField(editable=False, max_length=255, null=True),
        ),
        migrations.RunSQL(
            sql=[
                "UPDATE payments_payment SET provider_key = id::text || ':charge'",
                "UPDATE payments_refund SET provider_key = idempotency_key",
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="payment",
            name="provider_key",
            field=models.CharField(
                default=payments.models.new_provider_key,
                editable=False,
                help_text="Sent to the provider as Idempotency-Key on every attempt; random, fixed at creation.",
                max_length=64,
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="refund",
            name="provider_key",
            field=models.CharField(
                default=payments.models.new_provider_key,
                editable=False,
                help_text="Sent to the provider as Idempotency-Key on every attempt; random, fixed at creation.",
                max_length=255,
                unique=True,
            ),
        ),
    ]

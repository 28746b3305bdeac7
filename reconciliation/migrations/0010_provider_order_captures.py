"""duplicate_charge's candidates from a maintained count (issue 16; docs/reconciliation.md,
"Running balance").

ProviderOrderCaptures holds, per order id, how many provider charges of that order are
succeeded and not refunded in full by their own total. Kept like ProviderNetByHour
(migration 0009): statement triggers on the charges, one grouped upsert per statement
from its transition tables, in the same statement as the rows; an update that moves no
count writes nothing; TRUNCATE empties it. Backfilled after the triggers are created, in
this migration's transaction (their lock keeps writers out until commit).
"""

from django.db import migrations, models

OPEN = "status = 'succeeded' AND order_id IS NOT NULL AND amount_refunded_minor < amount_minor"


def _upsert(moved: str) -> str:
    return (
        "INSERT INTO reconciliation_providerordercaptures (order_id, open_charges) "
        f"SELECT order_id, SUM(n) FROM ({moved}) moved "
        "GROUP BY order_id HAVING SUM(n) <> 0 ORDER BY order_id "
        "ON CONFLICT (order_id) DO UPDATE "
        "SET open_charges = reconciliation_providerordercaptures.open_charges + EXCLUDED.open_charges;"
    )


ADDED = f"SELECT order_id, 1 AS n FROM new_rows WHERE {OPEN}"
REMOVED = f"SELECT order_id, -1 AS n FROM old_rows WHERE {OPEN}"

FORWARD_SQL = f"""
CREATE FUNCTION reconciliation_providercaptures_trg() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_upsert(ADDED)}
    ELSIF TG_OP = 'UPDATE' THEN
        {_upsert(ADDED + " UNION ALL " + REMOVED)}
    ELSIF TG_OP = 'DELETE' THEN
        {_upsert(REMOVED)}
    ELSE
        DELETE FROM reconciliation_providerordercaptures;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER reconciliation_providercaptures_ins
    AFTER INSERT ON reconciliation_providercharge
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providercaptures_trg();
CREATE TRIGGER reconciliation_providercaptures_upd
    AFTER UPDATE ON reconciliation_providercharge
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providercaptures_trg();
CREATE TRIGGER reconciliation_providercaptures_del
    AFTER DELETE ON reconciliation_providercharge
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providercaptures_trg();
CREATE TRIGGER reconciliation_providercaptures_truncate
    AFTER TRUNCATE ON reconciliation_providercharge
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providercaptures_trg();

INSERT INTO reconciliation_providerordercaptures (order_id, open_charges)
SELECT order_id, COUNT(*) FROM reconciliation_providercharge WHERE {OPEN} GROUP BY order_id;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS reconciliation_providercaptures_truncate ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providercaptures_del ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providercaptures_upd ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providercaptures_ins ON reconciliation_providercharge;
DROP FUNCTION IF EXISTS reconciliation_providercaptures_trg();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0009_provider_net_by_hour"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProviderOrderCaptures",
            fields=[
                ("order_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("open_charges", models.IntegerField(default=0)),
            ],
            options={
                "indexes": [
                    models.Index(
                        condition=models.Q(("open_charges__gt", 1)),
                        fields=["order_id"],
                        name="recon_pcaptures_many",
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD_SQL, REVERSE_SQL),
    ]

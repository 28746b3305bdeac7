"""clearing_mismatch's running balance (issue 16; docs/reconciliation.md, "Running balance").

ProviderNetByHour holds, per currency and provider hour, the sum of the succeeded
provider charges' amounts. It is maintained by statement triggers on the charges (one
aggregated upsert per statement, from its transition tables: the sync's bulk upserts
and a bench's million-row INSERT … SELECT cost one GROUP BY, not a trigger call per
row), so it moves in the same statement as the rows it summarises, whoever writes them.
An UPDATE that leaves every charge's contribution unchanged (the sync re-stamping
last_synced_at) writes nothing. TRUNCATE of the charges empties it.

The backfill runs after the triggers are created, in this migration's transaction:
CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on the charges until commit, so no
write can land between the backfill's read and the triggers taking over.

The hour is date_bin('1 hour', created, '2000-01-01 00:00:00+00'): whole UTC hours,
independent of the session's TimeZone (detectors/sql.py `provider_hour` is the same).
"""

from django.db import migrations, models


def _bin(column: str) -> str:
    return f"date_bin('1 hour', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


def _upsert(moved: str) -> str:
    """Add the (currency, hour, amount) rows of `moved` to the balance, one row per hour."""
    return (
        "INSERT INTO reconciliation_providernetbyhour (currency, hour, net) "
        f"SELECT currency, hour, SUM(amount) FROM ({moved}) moved "
        "GROUP BY currency, hour HAVING SUM(amount) <> 0 ORDER BY currency, hour "
        "ON CONFLICT (currency, hour) DO UPDATE SET net = reconciliation_providernetbyhour.net + EXCLUDED.net;"
    )


ADDED = f"SELECT n.currency, {_bin('n.created')} AS hour, n.amount FROM new_rows n WHERE n.status = 'succeeded'"
REMOVED = (
    f"SELECT o.currency, {_bin('o.created')} AS hour, -o.amount AS amount FROM old_rows o WHERE o.status = 'succeeded'"
)

FORWARD_SQL = f"""
CREATE FUNCTION reconciliation_providernet_trg() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_upsert(ADDED)}
    ELSIF TG_OP = 'UPDATE' THEN
        {_upsert(ADDED + " UNION ALL " + REMOVED)}
    ELSIF TG_OP = 'DELETE' THEN
        {_upsert(REMOVED)}
    ELSE
        DELETE FROM reconciliation_providernetbyhour;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER reconciliation_providernet_ins
    AFTER INSERT ON reconciliation_providercharge
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providernet_trg();
CREATE TRIGGER reconciliation_providernet_upd
    AFTER UPDATE ON reconciliation_providercharge
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providernet_trg();
CREATE TRIGGER reconciliation_providernet_del
    AFTER DELETE ON reconciliation_providercharge
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providernet_trg();
CREATE TRIGGER reconciliation_providernet_truncate
    AFTER TRUNCATE ON reconciliation_providercharge
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_providernet_trg();

INSERT INTO reconciliation_providernetbyhour (currency, hour, net)
SELECT currency, {_bin("created")}, SUM(amount) FROM reconciliation_providercharge
WHERE status = 'succeeded' GROUP BY 1, 2;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS reconciliation_providernet_truncate ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providernet_del ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providernet_upd ON reconciliation_providercharge;
DROP TRIGGER IF EXISTS reconciliation_providernet_ins ON reconciliation_providercharge;
DROP FUNCTION IF EXISTS reconciliation_providernet_trg();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0008_live_incident_type_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProviderNetByHour",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("currency", models.CharField(max_length=3)),
                ("hour", models.DateTimeField()),
                ("net", models.DecimalField(decimal_places=2, default=0, max_digits=14)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("currency", "hour"), name="recon_pnet_currency_hour")
                ],
            },
        ),
        # Reverse: drop the triggers before the table goes (the CreateModel's reverse).
        migrations.RunSQL(FORWARD_SQL, REVERSE_SQL),
    ]

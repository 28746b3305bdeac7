"""The ledger's running balance (issue 16; docs/domain-payments-ledger.md, "Running balance").

LedgerBalanceByHour holds, per account, whole UTC hour of the transaction's created_at
and shard, the sum of the entries. A statement trigger on payments_ledgerentry adds each
INSERT's entries (its transition table, joined to their transactions for created_at) in
the same statement: ledger_post's one INSERT of a posting's entries moves the balance
with no statement of its own. The ledger is append-only (migration 0002 refuses UPDATE
and DELETE); TRUNCATE empties the balance.

shard = txid_current() % 16: one database transaction always writes one shard, so
concurrent checkouts posting to provider_clearing share a row (and the second waits for
the first's commit) only when their shards match (1 in 16). Each upsert takes its rows
in (account, currency, hour) order: a capture and a refund (the same two accounts, in
opposite orders in ledger_post's entries) lock them in the same order. A deadlock needs
two transactions of one shard, each posting twice over different accounts in opposite
orders; PostgreSQL would abort one of them.

The backfill runs after the trigger is created, in this migration's transaction (the
trigger's lock keeps writers out until commit). The hour bins like reconciliation's
ProviderNetByHour: date_bin('1 hour', created_at, '2000-01-01 00:00:00+00').
"""

import django.db.models.deletion
from django.db import migrations, models


FORWARD_SQL = """
CREATE FUNCTION payments_ledgerbalance_trg() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO payments_ledgerbalancebyhour (account_id, currency, hour, shard, amount)
        SELECT n.account_id, n.currency, date_bin('1 hour', (
                   -- by primary key, per entry (the transition table has no statistics:
                   -- a join could be planned as a scan of every transaction)
                   SELECT t.created_at FROM payments_ledgertransaction t WHERE t.id = n.transaction_id
               ), TIMESTAMPTZ '2000-01-01 00:00:00+00'),
               (txid_current() % 16)::smallint, SUM(n.amount)
          FROM new_rows n
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (account_id, currency, hour, shard)
        DO UPDATE SET amount = payments_ledgerbalancebyhour.amount + EXCLUDED.amount;
    ELSE
        DELETE FROM payments_ledgerbalancebyhour;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER payments_ledgerbalance_ins
    AFTER INSERT ON payments_ledgerentry
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION payments_ledgerbalance_trg();
CREATE TRIGGER payments_ledgerbalance_truncate
    AFTER TRUNCATE ON payments_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION payments_ledgerbalance_trg();

INSERT INTO payments_ledgerbalancebyhour (account_id, currency, hour, shard, amount)
SELECT e.account_id, e.currency, date_bin('1 hour', t.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), 0, SUM(e.amount)
  FROM payments_ledgerentry e JOIN payments_ledgertransaction t ON t.id = e.transaction_id
 GROUP BY 1, 2, 3;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS payments_ledgerbalance_truncate ON payments_ledgerentry;
DROP TRIGGER IF EXISTS payments_ledgerbalance_ins ON payments_ledgerentry;
DROP FUNCTION IF EXISTS payments_ledgerbalance_trg();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0007_ledgertransaction_ledger_tx_created_brin"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerBalanceByHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("currency", models.CharField(max_length=3)),
                ("hour", models.DateTimeField()),
                ("shard", models.SmallIntegerField()),
                ("amount", models.DecimalField(decimal_places=2, default=0, max_digits=14)),
            ],
        ),
        migrations.AddField(
            model_name="ledgerbalancebyhour",
            name="account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="payments.ledgeraccount"
            ),
        ),
        migrations.AddConstraint(
            model_name="ledgerbalancebyhour",
            constraint=models.UniqueConstraint(
                fields=("account", "currency", "hour", "shard"), name="ledger_balance_account_hour_shard"
            ),
        ),
        migrations.RunSQL(FORWARD_SQL, REVERSE_SQL),
    ]

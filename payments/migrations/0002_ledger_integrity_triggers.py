"""Database-level ledger guarantees on PostgreSQL.

ledger_post already refuses unbalanced postings, but a raw INSERT (a bug, a shell,
a future service) must not be able to leave the ledger unbalanced either. These
constraint triggers are DEFERRABLE INITIALLY DEFERRED: entries of one transaction
are inserted one by one, so the sum is only meaningful at COMMIT, where a violation
aborts the whole database transaction.

The ledger is append-only (corrections are new adjustment transactions): UPDATE and
DELETE of ledger rows are refused. TRUNCATE (test flushes) is not a row event.
"""

from django.db import migrations

FORWARD_SQL = """
CREATE OR REPLACE FUNCTION payments_ledger_check_transaction(txn_id bigint) RETURNS void AS $$
DECLARE
    txn_currency varchar(3);
    entry_count integer;
    entry_total numeric;
    foreign_currency_count integer;
BEGIN
    SELECT currency INTO txn_currency FROM payments_ledgertransaction WHERE id = txn_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*), coalesce(sum(amount), 0), count(*) FILTER (WHERE currency <> txn_currency)
      INTO entry_count, entry_total, foreign_currency_count
      FROM payments_ledgerentry WHERE transaction_id = txn_id;
    IF entry_count < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % entries; a posting needs at least two', txn_id, entry_count
            USING ERRCODE = 'check_violation';
    END IF;
    IF entry_total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: entries sum to %', txn_id, entry_total
            USING ERRCODE = 'check_violation';
    END IF;
    IF foreign_currency_count > 0 THEN
        RAISE EXCEPTION 'ledger transaction % mixes currencies (transaction in %)', txn_id, txn_currency
            USING ERRCODE = 'check_violation';
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION payments_ledgerentry_balanced_trg() RETURNS trigger AS $$
BEGIN
    PERFORM payments_ledger_check_transaction(NEW.transaction_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION payments_ledgertransaction_balanced_trg() RETURNS trigger AS $$
BEGIN
    PERFORM payments_ledger_check_transaction(NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION payments_ledger_append_only_trg() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on %): post an adjustment instead', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER payments_ledgerentry_balanced
    AFTER INSERT ON payments_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION payments_ledgerentry_balanced_trg();

CREATE CONSTRAINT TRIGGER payments_ledgertransaction_balanced
    AFTER INSERT ON payments_ledgertransaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION payments_ledgertransaction_balanced_trg();

CREATE TRIGGER payments_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON payments_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only_trg();

CREATE TRIGGER payments_ledgertransaction_append_only
    BEFORE UPDATE OR DELETE ON payments_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only_trg();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS payments_ledgertransaction_append_only ON payments_ledgertransaction;
DROP TRIGGER IF EXISTS payments_ledgerentry_append_only ON payments_ledgerentry;
DROP TRIGGER IF EXISTS payments_ledgertransaction_balanced ON payments_ledgertransaction;
DROP TRIGGER IF EXISTS payments_ledgerentry_balanced ON payments_ledgerentry;
DROP FUNCTION IF EXISTS payments_ledger_append_only_trg();
DROP FUNCTION IF EXISTS payments_ledgertransaction_balanced_trg();
DROP FUNCTION IF EXISTS payments_ledgerentry_balanced_trg();
DROP FUNCTION IF EXISTS payments_ledger_check_transaction(bigint);
"""


def _run_on_postgres(sql):
    def run(apps, schema_editor):
        # params=None: the SQL contains literal % signs (RAISE formats).
        schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [
        migrations.RunPython(_run_on_postgres(FORWARD_SQL), _run_on_postgres(REVERSE_SQL)),
    ]

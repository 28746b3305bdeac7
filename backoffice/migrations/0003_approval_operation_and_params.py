"""Approvals store the operation (backoffice.operations) and the parameters it runs
with; the payment and the remediation action move into those parameters."""

from django.db import migrations, models

# kind -> (operation, how its parameters are read from the old columns)
_OPERATIONS = {
    "refund": "refund_request",
    "cancel": "order_cancel",
    "remediation": "remediate",
}


def forwards(apps, schema_editor):
    ApprovalRequest = apps.get_model("backoffice", "ApprovalRequest")
    for approval in ApprovalRequest.objects.all().iterator():
        approval.operation = _OPERATIONS.get(approval.kind, approval.kind)
        if approval.kind == "refund":
            approval.params = {"amount": str(approval.amount)}
        elif approval.kind == "remediation":
            approval.params = {"action": approval.remediation_action}
        else:
            approval.params = {}
        approval.save(update_fields=["operation", "params"])


def backwards(apps, schema_editor):
    ApprovalRequest = apps.get_model("backoffice", "ApprovalRequest")
    for approval in ApprovalRequest.objects.all().iterator():
        approval.remediation_action = (approval.params or {}).get("action", "")
        approval.save(update_fields=["remediation_action"])


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0002_approval_remediation"),
    ]

    operations = [
        migrations.AddField(
            model_name="approvalrequest",
            name="operation",
            field=models.CharField(default="", max_length=48),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="approvalrequest",
            name="params",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="approvalrequest",
            name="kind",
            field=models.CharField(
                choices=[("refund", "Refund"), ("cancel", "Cancel the order"), ("remediation", "Incident remediation")],
                max_length=16,
            ),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="approvalrequest", name="remediation_action"),
        migrations.RemoveField(model_name="approvalrequest", name="payment_id"),
    ]

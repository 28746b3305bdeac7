from django.db import models


class IdempotencyState(models.TextChoices):
    # Only ever seen inside the transaction that claimed the key: the record is
    # committed together with the effect, already completed (see services.py).
    IN_FLIGHT = "in_flight", "In flight"
    COMPLETED = "completed", "Completed"

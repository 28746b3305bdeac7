"""Demo data for `make run`: catalog, stock, staff logins and an API client.

Running it again changes nothing unless --stock is given, which sets every
product's on-hand stock to N.
"""

from decimal import Decimal

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from backoffice.roles import API_CLIENTS, FINANCE, SUPPORT, roles_ensure
from inventory import selectors as inventory_selectors
from inventory import services as inventory_services

DEFAULT_STOCK = 100
CATALOG = [
    ("MUG-001", "Concord mug", Decimal("12.50")),
    ("TEE-BLK-M", "T-shirt, black, M", Decimal("25.00")),
    ("TEE-WHT-L", "T-shirt, white, L", Decimal("25.00")),
    ("CAP-001", "Baseball cap", Decimal("18.00")),
    ("NOTE-A5", "Notebook A5", Decimal("7.90")),
    ("PEN-3", "Pens, set of 3", Decimal("4.50")),
    ("BAG-TOTE", "Tote bag", Decimal("15.00")),
    ("STICK-10", "Sticker pack", Decimal("3.00")),
]
CURRENCY = "EUR"
# Demo logins, printed by `make run`. Never used outside the embedded demo.
DEMO_USERS = [
    ("admin", "admin-demo-pass", None),
    ("support", "support-demo-pass", SUPPORT),
    ("finance", "finance-demo-pass", FINANCE),
]
DEMO_CLIENT = "demo-shop"


class Command(BaseCommand):
    help = "Create the demo catalog, stock, staff users and API client (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--stock",
            type=int,
            help=f"Set every product's on-hand stock to N (default on first run: {DEFAULT_STOCK}).",
        )

    def handle(self, *args, stock: int | None, **options):
        if stock is not None and not 0 <= stock <= 1_000_000:
            raise CommandError("--stock must be between 0 and 1000000")
        with transaction.atomic():
            groups = roles_ensure()
            for sku, name, price in CATALOG:
                existed = sku in inventory_selectors.products_by_sku([sku])
                inventory_services.product_upsert(sku=sku, name=name, price=price, currency=CURRENCY)
                if stock is not None or not existed:
                    inventory_services.stock_set_on_hand(
                        sku=sku, on_hand=DEFAULT_STOCK if stock is None else stock, reason="seed_demo"
                    )
            for username, password, role in DEMO_USERS:
                user, created = User.objects.get_or_create(username=username, defaults={"is_staff": True})
                if created:
                    user.set_password(password)
                    user.is_superuser = role is None
                    user.save()
                    if role:
                        user.groups.add(groups[role])
            client, _ = User.objects.get_or_create(username=DEMO_CLIENT, defaults={"is_staff": False})
            client.groups.add(groups[API_CLIENTS])
            token, _ = Token.objects.get_or_create(user=client)

        self.stdout.write("  Demo logins (back office and admin):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"    {username:<8} / {password:<18} {role or 'superuser'}")
        self.stdout.write(f"  API client {DEMO_CLIENT!r}: Authorization: Token {token.key}")

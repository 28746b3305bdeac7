"""Demo data for `make run`: catalog, stock, staff logins and an API client.

Running it again changes nothing unless --stock is given, which sets every
product's on-hand stock to N. It refuses to run outside the local demo
(settings.DEMO_MODE, on in config.settings.local only): its logins are public.
"""

import hashlib
import hmac
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apitokens.selectors import api_token_status
from apitokens.services import api_token_issue
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
        if not getattr(settings, "DEMO_MODE", False):
            raise CommandError(
                "seed_demo creates demo logins with public passwords: it runs only in the local demo "
                "(DJANGO_SETTINGS_MODULE=config.settings.local, as `make run` sets). Use create_staff "
                "and create_api_client elsewhere."
            )
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
            demo_key = _demo_client_key()
            demo_key_state = api_token_status(key=demo_key)
            if demo_key_state is None:
                api_token_issue(user=client, key=demo_key)

        self.stdout.write("  Demo logins (back office and admin):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"    {username:<8} / {password:<18} {role or 'superuser'}")
        if demo_key_state == "retired":
            self.stdout.write(f"  API client {DEMO_CLIENT!r}: its demo token was rotated or revoked")
        else:
            self.stdout.write(f"  API client {DEMO_CLIENT!r}: Authorization: Token {demo_key}")


def _demo_client_key() -> str:
    """The demo client's token: stable per installation (derived from SECRET_KEY), so every
    run can print it while only its digest is stored."""
    return hmac.new(settings.SECRET_KEY.encode(), b"demo-shop-token", hashlib.sha256).hexdigest()[:40]

from io import StringIO

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Enrol a TOTP authenticator for a staff user: prints the otpauth:// URI and a QR code to "
        "scan. From then on the back office asks that user for a code at every log-in."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--replace", action="store_true", help="Replace the user's existing authenticator."
        )
        parser.add_argument("--no-qr", action="store_true", help="Print the URI only.")

    def handle(self, *args, username: str, replace: bool, no_qr: bool, **options):
        try:
            user = get_user_model().objects.get(username=username, is_staff=True)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no staff user named {username!r}") from None
        with transaction.atomic():
            existing = TOTPDevice.objects.select_for_update().filter(user=user)
            if existing.exists() and not replace:
                raise CommandError(f"{username!r} already has an authenticator: pass --replace to replace it")
            existing.delete()
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        self.stdout.write(f"Authenticator enrolled for {username!r}. Scan this in an authenticator app:")
        if not no_qr:
            code = qrcode.QRCode(border=1)
            code.add_data(device.config_url)
            picture = StringIO()
            code.print_ascii(out=picture, invert=True)
            self.stdout.write(picture.getvalue(), ending="")
        self.stdout.write(device.config_url)

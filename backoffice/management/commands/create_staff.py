import getpass
import sys

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from backoffice.roles import STAFF_ROLES, staff_create


class Command(BaseCommand):
    help = "Create a staff user with the support or finance role."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=STAFF_ROLES)
        parser.add_argument("--password", help="Prompted for when omitted (needs a terminal).")

    def handle(self, *args, username: str, role: str, password: str | None, **options):
        if password is None:
            if not sys.stdin.isatty():
                raise CommandError("No terminal to prompt on: pass --password.")
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match.")
        try:
            # With the would-be user, so the similarity validator can compare it with the name.
            validate_password(password, user=User(username=username))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        try:
            staff_create(username=username, role=role, password=password)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created {role} user {username!r}."))

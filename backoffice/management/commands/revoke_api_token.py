from django.core.management.base import BaseCommand, CommandError

from apitokens.services import api_token_revoke
from backoffice.roles import api_client_get


class Command(BaseCommand):
    help = "Revoke an API client's tokens (every active one, or the one starting with --prefix)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The API client's name.")
        parser.add_argument(
            "--prefix", help="Only the token whose first 8 characters are these (see the admin)."
        )

    def handle(self, *args, name: str, prefix: str | None, **options):
        try:
            client = api_client_get(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if prefix is not None and len(prefix) < 8:
            raise CommandError("--prefix must be the token's first 8 characters")
        count = api_token_revoke(user=client, prefix=prefix)
        if prefix is not None and count == 0:
            raise CommandError(f"{name!r} has no active token starting with {prefix[:8]!r}")
        self.stdout.write(f"Revoked {count} token(s) of {name!r}; requests with them now get 401.")

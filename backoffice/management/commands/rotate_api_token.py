from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from apitokens.services import api_token_rotate
from backoffice.roles import api_client_get


class Command(BaseCommand):
    help = (
        "Issue a new token for an API client and retire its old ones (at once, or after "
        "--grace-minutes); prints the new token as the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The API client's name.")
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=0,
            help="Keep the old tokens working this long (0-10080), so the client can switch without downtime.",
        )

    def handle(self, *args, name: str, grace_minutes: int, **options):
        if not 0 <= grace_minutes <= 7 * 24 * 60:
            raise CommandError("--grace-minutes must be between 0 and 10080 (one week)")
        try:
            client = api_client_get(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        token = api_token_rotate(user=client, grace=timedelta(minutes=grace_minutes))
        old = f"stop working in {grace_minutes} minutes" if grace_minutes else "no longer work"
        self.stdout.write(
            f"New token for {name!r}; its previous tokens {old}. Use: Authorization: Token <token>"
        )
        self.stdout.write(token)

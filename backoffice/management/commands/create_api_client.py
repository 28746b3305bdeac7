from django.core.management.base import BaseCommand, CommandError

from backoffice.roles import api_client_create


class Command(BaseCommand):
    help = "Create a REST API client and print its token (the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Client name, 1-150 characters: letters, digits and @.+-_")

    def handle(self, *args, name: str, **options):
        if not name or len(name) > 150 or not all(c.isalnum() or c in "@.+-_" for c in name):
            raise CommandError("NAME must be 1-150 characters of letters, digits and @.+-_")
        try:
            token = api_client_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created API client {name!r}. Use: Authorization: Token <token>")
        self.stdout.write(token)

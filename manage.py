#!/usr/bin/env python
import os
import sys


def main() -> None:
    # Production unless told otherwise, like wsgi.py and celery_app.py: production settings
    # refuse default secrets, so a forgotten variable fails closed. On a developer
    # machine: DJANGO_SETTINGS_MODULE=config.settings.local (`make run` sets it).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

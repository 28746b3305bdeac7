"""`python -m sandbox_psp <command>`: Django management for the sandbox's own database.

e.g. `python -m sandbox_psp migrate`. The settings module is forced, not defaulted:
`make run` exports Concord's DJANGO_SETTINGS_MODULE to every process.
"""

import os
import sys

from django.core.management import execute_from_command_line

os.environ["DJANGO_SETTINGS_MODULE"] = "sandbox_psp.settings"
execute_from_command_line([f"{sys.executable} -m sandbox_psp", *sys.argv[1:]])

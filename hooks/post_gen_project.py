"""Remove the paths that belong to options not chosen."""

from pathlib import Path

REMOVE_PATHS = [
    "{% if cookiecutter.license == 'Proprietary' %}LICENSE{% endif %}",
]

for path in filter(None, REMOVE_PATHS):
    Path(path).unlink()

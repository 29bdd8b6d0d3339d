"""Regenerate the generated project's uv.lock after changing its dependencies.

Bakes the defaults, runs `uv lock` there and stores the lock in the template with the project's
name templated, so every freshly baked project passes `uv sync --locked`. Run: `make lock`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
LOCK = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
SLUG_PLACEHOLDER = "{{ cookiecutter.project_slug }}"


def main() -> int:
    slug = json.loads((TEMPLATE / "cookiecutter.json").read_text())["project_name"]
    slug = slug.lower().strip().replace(" ", "-").replace("_", "-")
    with tempfile.TemporaryDirectory() as tmp:
        # The baked project carries the current lock: `uv lock` keeps its pins and only
        # resolves what changed. `UV_LOCK_UPGRADE=1 make lock` upgrades everything.
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=tmp))
        upgrade = ["--upgrade"] if os.environ.get("UV_LOCK_UPGRADE") == "1" else []
        subprocess.run(
            [os.environ.get("UV", "uv"), "lock", "--quiet", *upgrade], cwd=project, check=True
        )
        lock = (project / "uv.lock").read_text()
    own_entry = f'name = "{slug}"'
    if lock.count(own_entry) != 1:
        print(f"error: expected exactly one '{own_entry}' in the lock", file=sys.stderr)
        return 1
    LOCK.write_text(lock.replace(own_entry, f'name = "{SLUG_PLACEHOLDER}"'))
    packages = len(re.findall(r"^\[\[package\]\]$", lock, re.M))
    print(f"wrote {LOCK.relative_to(TEMPLATE)}: {packages} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

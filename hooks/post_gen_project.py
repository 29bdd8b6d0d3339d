"""After rendering: drop the unchosen license, record the template, say what to do next."""

import json
import subprocess
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
SLUG, TEMPLATE = ANSWERS["project_slug"], ANSWERS["_template"]
# Set by plain cookiecutter only; cruft writes .cruft.json itself.
REPO_DIR = ANSWERS.get("_repo_dir", "")
# Absolute whatever path the bake was given (template_answers.py, cookiecutter's Jinja extension).
TEMPLATE_DIR = Path(r"""{{ template_dir }}""")


def record_template() -> None:
    """A plain cookiecutter bake records the template's commit and path, as cruft does."""
    if not REPO_DIR:  # cruft: it writes .cruft.json itself
        return
    command = ["git", "-C", str(TEMPLATE_DIR), "rev-parse", "HEAD"]
    head = subprocess.run(command, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        print("note: the template is not a git checkout, so .cruft.json records no commit")
        return
    state = json.loads(Path(".cruft.json").read_text())
    remote = "://" in TEMPLATE or TEMPLATE.startswith(("git@", "gh:", "gl:", "bb:"))
    state["template"] = TEMPLATE if remote else str(TEMPLATE_DIR)
    state["commit"] = head.stdout.strip()
    state["context"]["cookiecutter"]["_template"] = state["template"]
    Path(".cruft.json").write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if ANSWERS["license"] == "Proprietary":
        Path("LICENSE").unlink()
    record_template()
    # This hook runs inside the new project: its path is right whatever --output-dir was.
    print(f"Baked {SLUG}. Next: cd {Path.cwd()} && make setup pipeline   (`make` lists every task)")

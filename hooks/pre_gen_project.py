"""Reject malformed answers before any file is written (names that clash: post_gen_project)."""

import json
import keyword
import re
import sys
import unicodedata

# Every answer, as JSON: an answer holding quotes or backslashes stays one string.
ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Kubernetes names are built from the slug: "<slug>-production" must fit a 63-character label.
MAX_SLUG = 52


def suggested_slug(answer: str) -> str:
    """The answer transliterated and collapsed (cookiecutter ships python-slugify)."""
    from slugify import slugify

    slug = slugify(answer, max_length=40, word_boundary=True)
    return f"ml-{slug}" if slug[:1].isdigit() else slug or "ml-service"


def problem() -> str | None:
    slug, package = ANSWERS["project_slug"], ANSWERS["package_name"]
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        return (
            f"project_slug {slug!r} is not a valid slug; fix: use lowercase letters, digits "
            f"and single hyphens, starting with a letter, e.g. {suggested_slug(slug)!r}"
        )
    if len(slug) > MAX_SLUG:
        return (
            f"project_slug {slug!r} has {len(slug)} characters; Kubernetes names built from it "
            f"allow {MAX_SLUG}; fix: shorten it, e.g. {slug[:MAX_SLUG].rstrip('-')!r}"
        )
    if not package.isidentifier() or not package.isascii() or package != package.lower():
        return (
            f"package_name {package!r} is not a lowercase Python identifier; fix: use lowercase "
            "letters, digits and underscores, starting with a letter, e.g. 'churn_model'"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"package_name {package!r} is a Python keyword; fix: choose e.g. '{package}_model'"
    for field in ("description", "author_name"):
        if any(unicodedata.category(char) == "Cc" for char in ANSWERS[field]):
            return f"{field} holds a control character; fix: type it again as plain text"
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", ANSWERS["author_email"]):
        return (
            f"author_email {ANSWERS['author_email']!r} is not an email address; "
            "fix: use the form name@example.com"
        )
    if ANSWERS["python_version"] not in SUPPORTED_PYTHONS:
        return (
            f"python_version {ANSWERS['python_version']!r} is not supported; "
            f"fix: choose one of {', '.join(SUPPORTED_PYTHONS)}"
        )
    return None


if __name__ == "__main__":
    message = problem()
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)

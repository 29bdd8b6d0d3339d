"""Refuse an answer the prompts did not check: a replayed or hand-edited answer file.

The rules live in template_answers.py; the prompts apply them as each answer is typed.
"""

import json
import sys

# In a list: tojson writes a quoted string (or null), and a quote must not touch the """.
(REFUSAL,) = json.loads(r"""[{{ cookiecutter | refusal | tojson }}]""")

if __name__ == "__main__" and REFUSAL:
    print(f"error: {REFUSAL}", file=sys.stderr)
    sys.exit(1)

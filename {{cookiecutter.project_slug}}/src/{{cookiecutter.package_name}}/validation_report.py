"""The validation gate's HTML report: one self-contained page, readable offline.

Great Expectations' data docs load their styles and scripts from six CDNs, so offline (this
project's promise) they render as unstyled text. This page carries its own few lines of CSS and
no script: the verdict, then one table row per check with its column, outcome and evidence.
"""

from __future__ import annotations

import html
from typing import Any

from .row_checks import shown

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.passed { color: #1a7f37; } .failed { color: #cf222e; font-weight: 600; }
code { font-size: .9em; }
"""
MAX_EVIDENCE_CHARS = 200


def _evidence(result: dict[str, Any]) -> str:
    details = result.get("result") or {}
    if "observed_value" in details:
        return f"observed: {details['observed_value']}"
    if details.get("unexpected_count"):
        examples = ", ".join(map(shown, details.get("partial_unexpected_list") or []))
        return f"{details['unexpected_count']} unexpected rows; e.g. {examples}"
    error = (result.get("exception_info") or {}).get("exception_message")
    return f"error: {error}" if error else ""


def _row(result: dict[str, Any]) -> str:
    config = result["expectation_config"]
    kwargs = config.get("kwargs", {})
    outcome = "passed" if result["success"] else "failed"
    cells = [
        f"<code>{html.escape(config['type'])}</code>",
        html.escape(str(kwargs.get("column", "(table)"))),
        f'<span class="{outcome}">{outcome}</span>',
        html.escape(_evidence(result)[:MAX_EVIDENCE_CHARS]),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render(details: dict[str, Any], data_path: str, rows: int) -> str:
    """The page for a validation result (`gx_result.json`) of `data_path`."""
    results = sorted(details["results"], key=lambda result: bool(result["success"]))
    failed = sum(not result["success"] for result in results)
    verdict = f"{failed} of {len(results)} checks failed" if failed else "all checks passed"
    title = html.escape(f"Validation of {data_path}")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title><style>{STYLE}</style></head><body>",
            f"<h1>{title}</h1>",
            f'<p class="{"failed" if failed else "passed"}">{rows} rows: {verdict}</p>',
            "<table><thead><tr><th>check</th><th>column</th><th>outcome</th>"
            "<th>evidence</th></tr></thead><tbody>",
            *(_row(result) for result in results),
            "</tbody></table></body></html>",
        ]
    )

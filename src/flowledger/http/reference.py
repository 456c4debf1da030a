"""``/api/v1/docs``: the API reference as one self-contained HTML page, rendered on the
server from the OpenAPI document. Nothing is fetched from elsewhere, so it works offline
(Swagger UI would load its scripts from a CDN)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1f2328;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6edf3;background:#0d1117}
table td,table th{border-color:#30363d}code{background:#161b22}}
h2{margin-top:2.5rem;border-bottom:1px solid #8884;padding-bottom:.3rem}
.op{margin:1.2rem 0 1.6rem}.method{font-weight:700;text-transform:uppercase;
display:inline-block;min-width:4.5rem}code{background:#f6f8fa;padding:.1rem .3rem;
border-radius:4px}table{border-collapse:collapse;margin:.4rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
.muted{opacity:.7}
"""


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    return str(schema.get("type", "any"))


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [f'<div class="op"><div><span class="method">{escape(method)}</span>'
             f"<code>{escape(path)}</code> — {escape(op.get('summary', ''))}</div>"]
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{escape(_type(p.get('schema', {})))}</td>"
            f"<td>{'required' if p.get('required') else ''}</td>"
            f"<td>{escape(p.get('description') or p.get('schema', {}).get('description', ''))}"
            "</td></tr>" for p in params)
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th>"
                     f"<th>meaning</th></tr>{rows}</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        parts.append(f"<div>body: <code>{escape(_type(body.get('schema', {})))}</code></div>")
    answers = ", ".join(f"{escape(code)} {escape(r.get('description', ''))}"
                        for code, r in op.get("responses", {}).items())
    parts.append(f'<div class="muted">answers: {answers}</div></div>')
    return "".join(parts)


def reference_page(spec: dict[str, Any], spec_url: str) -> str:
    """The HTML reference of ``spec`` (an OpenAPI document), grouped by tag."""
    groups: dict[str, list[str]] = {}
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(_operation(method, path, op))
    info = spec.get("info", {})
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in groups.items())
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{escape(info.get('title', 'API'))} API</title><style>{_STYLE}</style>"
            f"</head><body><h1>{escape(info.get('title', 'API'))} HTTP API "
            f"<span class=muted>{escape(str(info.get('version', '')))}</span></h1>"
            f"<p>{escape(info.get('description', ''))} Every route but the health checks "
            "takes <code>Authorization: Bearer fl_…</code>. The machine-readable "
            f'document: <a href="{escape(spec_url)}">{escape(spec_url)}</a>.</p>'
            f"{sections}</body></html>")

"""MkDocs hooks: the README, the changelog and the benchmark READMEs become pages of the
site, and links between repository files become links between pages.

The Markdown in the repository is written to be read on a forge (links are paths in the
repository); the site rewrites those paths, so both read correctly and neither copy
drifts.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

#: Repository files published as pages (repository path → page).
PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md",
         "bench/README.md": "benchmarks.md", "bench/peers/README.md": "benchmarks-peers.md"}
DOCS = "docs/"
# Links and images: [text](target), ![alt](target).
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent
    for source, page in PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(root / source)))
    return files


def _repository_path(page: Page) -> str:
    """Where the page's Markdown lives in the repository."""
    for source, published in PAGES.items():
        if page.file.src_uri == published:
            return source
    return DOCS + page.file.src_uri


def _rewrite(target: str, here: str, text: str) -> str:
    """A link written between repository files, as a link between pages (or plain text
    when the file it names is not part of the site)."""
    if re.match(r"^[a-z]+:", target) or target.startswith("#"):
        return f"[{text}]({target})"
    path, _, anchor = target.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(here), path))
    if resolved in PAGES:
        page = PAGES[resolved]
    elif resolved.startswith(DOCS):
        page = resolved[len(DOCS):]
    else:  # a source file: named by its path, not linked (the site has no copy of it)
        return f"`{resolved}`"
    here_page = here[len(DOCS):] if here.startswith(DOCS) else PAGES[here]
    relative = posixpath.relpath(page, posixpath.dirname(here_page) or ".")
    return f"[{text}]({relative}{'#' + anchor if anchor else ''})"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files,
                     **_: Any) -> str:
    here = _repository_path(page)
    return _LINK.sub(lambda found: found[1] + _rewrite(found[3], here, found[2]), markdown)

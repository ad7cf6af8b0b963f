"""Docstrings name the derivations by path ("Equations: docs/derivations/lstm.md#forward"):
on the API pages those paths are links.

The docstring template (docs/templates/python/material/docstring.html.jinja) writes each
such path as a cross-reference, ``[`docs/derivations/lstm.md#forward`][]``. This hook
registers, for every Markdown page, its path (``docs/<page>``, its first heading) and the
path of each of its headings (``docs/<page>#<anchor>``) with mkdocs-autorefs, which then
writes each link relative to the page it lands on, and warns, failing the strict build,
about a path that names no page or no heading.
"""

from __future__ import annotations


def _anchors(toc):
    for item in toc:
        yield item.id
        yield from _anchors(item.children)


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".md"):
        return html
    autorefs = config.plugins["autorefs"]
    path = f"docs/{page.file.src_uri}"
    anchors = list(_anchors(page.toc))
    if anchors:  # the page itself: its first heading, the title
        autorefs.register_anchor(page, path, anchors[0])
    for anchor in anchors:
        autorefs.register_anchor(page, f"{path}#{anchor}", anchor)
    return html

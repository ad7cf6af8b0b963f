"""The notebook pages: run as the site is built, with every answer folded away.

mkdocs-jupyter executes each notebook (``execute: true`` in mkdocs.yml) in the fast setting,
``MINIRNN_FAST=1`` as under pytest (notebooks/conftest.py), so that its figures appear on
the site; the stored .ipynb files keep no outputs. In each code cell, every solution region
(``### BEGIN SOLUTION`` ... ``### END SOLUTION``, found by minirnn.assignment.regions as
``minirnn assignment make`` finds it) is folded behind a "Show solution" control, and the
cell's copy button copies the student's stub instead. docs/classroom.md says why.

A marker left anywhere else on a notebook page (a region in a markdown cell, which this
does not fold) stops the build. Each notebook's execution time is logged.
"""

from __future__ import annotations

import html as htmllib
import logging
import os
import re
import time
from pathlib import Path

from mkdocs.exceptions import PluginError

from minirnn.assignment.regions import BEGIN, END, find_regions, strip_solutions

log = logging.getLogger("mkdocs.hooks.notebook_pages")

CODE = re.compile(r'(<div class="highlight-ipynb[^"]*">)<pre>(.*?)</pre>(</div>)', re.S)
COPY_TEXT = re.compile(r'(<div class="clipboard-copy-txt" id="[^"]*">)(.*?)(</div>)', re.S)
# What stays in view: the page without its folds and without code spans in the prose.
FOLDED_OR_CODE_SPAN = re.compile(r'<details class="solution">.*?</details>|<code>.*?</code>', re.S)
TAG = re.compile(r"<[^>]*>")

_started = {}
_seconds = {}


def on_config(config):
    os.environ["MINIRNN_FAST"] = "1"
    # One BLAS thread per kernel: the fast setting's models are small, and on a busy machine
    # (CI, a test suite beside the build) OpenBLAS's threads made 04_char_rnn run 3x longer.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    data = Path(config.config_file_path).resolve().parent.parent / "shared" / "data"
    if "MINIRNN_DATA" not in os.environ and data.is_dir():
        os.environ["MINIRNN_DATA"] = str(data)
    return config


def _is_notebook(page):
    return page.file.src_uri.endswith(".ipynb")


def on_page_markdown(markdown, page, config, files):
    if _is_notebook(page):
        _started[page.file.src_uri] = time.perf_counter()  # mkdocs-jupyter runs it next
    return markdown


def fold_code(pre_body, where):
    """A highlighted cell's ``<pre>`` body as HTML: its solution regions in ``<details>``."""
    lines = pre_body.split("\n")
    text = [htmllib.unescape(TAG.sub("", line)) for line in lines]
    regions = find_regions("\n".join(text), where)
    if not regions:
        return None
    parts, pos = [], 0
    for begin, end in regions:
        parts.append(_pre(lines[pos:begin]))
        indent = len(text[begin]) - len(text[begin].lstrip())
        parts.append(f'<details class="solution"><summary style="margin-left: {indent}ch">'
                     '<span class="show">Show solution</span>'
                     '<span class="hide">Hide solution</span>'
                     f'</summary>{_pre(lines[begin + 1:end])}</details>')
        pos = end + 1
    parts.append(_pre(lines[pos:]))
    return "".join(parts)


def _pre(lines):
    body = "\n".join(lines).strip("\n")
    return f"<pre>{body}</pre>" if body.replace("<span></span>", "").strip() else ""


def on_page_content(html, page, config, files):
    if not _is_notebook(page):
        return html
    where = page.file.src_uri
    seconds = time.perf_counter() - _started.pop(where, time.perf_counter())
    _seconds[where] = seconds
    log.info("%s: executed and rendered in %.1f s", where, seconds)

    def fold(m):
        try:
            folded = fold_code(m.group(2), where)
        except ValueError as err:
            raise PluginError(str(err)) from err
        return m.group(0) if folded is None else m.group(1) + folded + m.group(3)

    def stub(m):
        source = htmllib.unescape(m.group(2))
        stubbed, n = strip_solutions(source, where)
        if n == 0:
            return m.group(0)
        return m.group(1) + htmllib.escape(stubbed, quote=False) + m.group(3)

    html = COPY_TEXT.sub(stub, CODE.sub(fold, html))
    shown = FOLDED_OR_CODE_SPAN.sub("", html)
    for marker in (BEGIN, END):
        if marker.lstrip("# ") in shown:  # a markdown cell makes "### ..." a heading
            raise PluginError(f"{where}: {marker!r} is still shown on the page: only solution "
                              "regions in code cells are folded (docs/hooks/notebook_pages.py)")
    return html


def on_post_build(config):
    if _seconds:
        log.info("Notebooks executed and rendered in %.1f s (%s)", sum(_seconds.values()),
                 ", ".join(f"{Path(k).stem} {v:.1f} s" for k, v in _seconds.items()))
    _seconds.clear()

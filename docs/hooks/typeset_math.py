"""Math typeset when the site is built, so that every formula shows with no network and no script.

KaTeX (the npm package pinned by docs/hooks/package-lock.json, installed by `npm ci` into
build/docs-katex/, which git ignores) turns each formula into HTML with its MathML for screen readers; the site serves
KaTeX's stylesheet and fonts itself, under assets/katex/. The formulas are found

- on Markdown pages, where pymdownx.arithmatex (generic mode) wraps each one in
  ``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``;
- on notebook pages (mkdocs-jupyter), where a markdown cell keeps Jupyter's ``$...$`` and
  ``$$...$$`` as text inside ``<div class="... jp-RenderedMarkdown ...">``; nbconvert's
  MathJax loader is taken off those pages.

A formula KaTeX cannot typeset stops the build, naming the page, the formula and KaTeX's
message. One Node.js process (katex-render.cjs) serves the whole build.
"""

from __future__ import annotations

import html as htmllib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

HOOKS = Path(__file__).resolve().parent
INSTALL = HOOKS.parents[1] / "build" / "docs-katex"
KATEX = INSTALL / "node_modules" / "katex"
ASSETS = "assets/katex"

log = logging.getLogger("mkdocs.hooks.typeset_math")

ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
MARKDOWN_CELL = re.compile(r'<div class="[^"]*\bjp-RenderedMarkdown\b[^"]*"[^>]*>')
DIV = re.compile(r"<div\b|</div>")
# Inside a markdown cell: code and tags are skipped, the text between them searched for math.
NOT_TEXT = re.compile(r"<pre\b.*?</pre>|<code\b.*?</code>|<[^>]*>", re.S)
JUPYTER_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$]+?)\$", re.S)
NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->\s*<script[^>]*>\s*</script>\s*"
    r"<!-- MathJax configuration -->\s*<script type=\"text/x-mathjax-config\">.*?</script>", re.S)


def installed_version():
    """The KaTeX version in node_modules, or None."""
    try:
        return json.loads((KATEX / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def locked_version():
    lock = json.loads((HOOKS / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/katex"]["version"]


def ensure_katex():
    """Install the locked KaTeX with `npm ci` unless it is there already (needs the network)."""
    if not shutil.which("node"):
        raise PluginError("the docs build typesets its math with KaTeX and needs Node.js")
    wanted = locked_version()
    if installed_version() == wanted:
        return
    if not shutil.which("npm"):
        raise PluginError(f"KaTeX {wanted} is not installed in {INSTALL} and there is no npm")
    log.info("Installing KaTeX %s into %s with npm ci (docs/hooks/package-lock.json)",
             wanted, INSTALL)
    INSTALL.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HOOKS / name, INSTALL / name)
    run = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts",
                          "--loglevel=error"], cwd=INSTALL, capture_output=True, text=True)
    if run.returncode != 0 or installed_version() != wanted:
        raise PluginError(f"`npm ci` in {INSTALL} could not install KaTeX {wanted} (the first "
                          f"build needs network access):\n{run.stdout}{run.stderr}")


class Katex:
    """The katex-render.cjs process: a list of (tex, display) in, a list of results out."""

    def __init__(self):
        self.process = None

    def render(self, formulas):
        if self.process is None:
            self.process = subprocess.Popen(
                ["node", str(HOOKS / "katex-render.cjs"), str(KATEX)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, encoding="utf-8")
        request = [{"tex": tex, "display": display} for tex, display in formulas]
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise PluginError("the KaTeX process (docs/hooks/katex-render.cjs) stopped")
        return json.loads(line)

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=30)
            self.process = None


katex = Katex()


def on_config(config):
    ensure_katex()
    config.extra_css.insert(0, f"{ASSETS}/katex.min.css")
    return config


def on_files(files, config):
    dist = KATEX / "dist"
    for path in [dist / "katex.min.css", *sorted((dist / "fonts").iterdir())]:
        uri = f"{ASSETS}/{path.relative_to(dist).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def formulas(html):
    """``[(start, end, tex, display), ...]``: where each formula of a page's HTML is."""
    found = []
    for m in ARITHMATEX.finditer(html):
        tex = htmllib.unescape(m.group(2)).strip()
        display = m.group(1) == "div"
        if tex.startswith(("\\(", "\\[")):
            tex = tex[2:-2]
        found.append((m.start(), m.end(), tex, display))
    for cell in MARKDOWN_CELL.finditer(html):
        start, end = cell.end(), _closing_div(html, cell.end())
        pos = start
        for tag in [*NOT_TEXT.finditer(html, start, end), None]:
            text_end = tag.start() if tag else end
            for m in JUPYTER_MATH.finditer(html, pos, text_end):
                display = m.group(1) is not None or m.group(2) is not None
                tex = next(g for g in m.groups() if g is not None)
                found.append((m.start(), m.end(), htmllib.unescape(tex).strip(), display))
            pos = tag.end() if tag else end
    return sorted(found)


def _closing_div(html, pos):
    depth = 1
    for m in DIV.finditer(html, pos):
        depth += 1 if m.group() == "<div" else -1
        if depth == 0:
            return m.start()
    return len(html)


def on_page_content(html, page, config, files):
    if page.file.src_uri.endswith(".ipynb"):
        html = NBCONVERT_MATHJAX.sub("", html)
    found = formulas(html)
    if not found:
        return html
    results = katex.render([(tex, display) for _, _, tex, display in found])
    out, pos = [], 0
    for (start, end, tex, display), result in zip(found, results):
        if "error" in result:
            raise PluginError(f"{page.file.src_uri}: KaTeX cannot typeset {tex!r}: "
                              f"{result['error']}")
        inner = result["html"]
        if html.startswith('<span class="arithmatex">', start):
            inner = f'<span class="arithmatex">{inner}</span>'
        elif html.startswith('<div class="arithmatex">', start):
            inner = f'<div class="arithmatex">{inner}</div>'
        out += [html[pos:start], inner]
        pos = end
    out.append(html[pos:])
    return "".join(out)


def on_post_build(config):
    katex.close()


def on_build_error(error):
    katex.close()

"""The documentation site as a reader gets it offline: built with the network cut, every
formula typeset, every notebook page with its figures and without its answers.

The site is built once for this module, inside a network namespace that has only a loopback
interface (``unshare -rn``; the loopback is brought up for the Jupyter kernels that run the
notebooks). The checks read the built HTML; where Chromium is installed, one more test looks
at the LSTM derivation page in a browser with no network. Needs the `docs` extra
(mkdocs-material, mkdocstrings, mkdocs-jupyter) and Node.js for KaTeX; skipped without them.
"""

from __future__ import annotations

import html as htmllib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from minirnn.assignment.regions import find_regions

from .conftest import build_warnings, offline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIXTURES = ROOT / "tests" / "fixtures"
HOOKS = ROOT / "docs" / "hooks"

def _load_hook(name):
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(docs_site):
    """The session's build (tests/conftest.py), which must be the offline one."""
    if not docs_site.offline:
        pytest.skip(docs_site.why_not)
    assert docs_site.returncode == 0, ("mkdocs build --strict failed with the network cut:\n"
                                      + docs_site.log[-6000:])
    return docs_site


def _notebooks():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    return re.findall(r"notebooks/(\w+)\.ipynb", nav)


def _page(out, name):
    return (out / name / "index.html").read_text(encoding="utf-8")


def _article(page_html):
    m = re.search(r"<article.*?</article>", page_html, flags=re.S)
    return m.group(0) if m else page_html


def _text(page_html):
    """What a reader reads: the page's body (navigation, contents, article) without code,
    scripts, styles, the MathML copy of each formula (for screen readers) and the hidden
    copy-button texts."""
    a = re.search(r"<body.*?</body>", page_html, flags=re.S).group(0)
    a = re.sub(r"<(script|style|pre|code|math|textarea)\b.*?</\1>", "", a, flags=re.S)
    a = re.sub(r'<div class="clipboard-copy-txt".*?</div>', "", a, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", a))


def _cells(name, kind):
    cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


def test_the_site_builds_with_the_network_cut_and_without_warnings(site):
    assert not site.warnings, "\n".join(site.warnings)
    spent = re.search(r"Notebooks executed and rendered in ([\d.]+) s", site.log)
    assert spent, "the build did not report the notebooks' time"
    print(f"\ndocs build with the network cut: {site.seconds:.1f} s, of which notebooks "
          f"{spent.group(1)} s")


def test_no_raw_tex_is_left_in_the_text_of_any_page(site):
    pages = sorted(site.out.rglob("index.html"))
    assert len(pages) > 40
    raw = re.compile(r".{0,30}(?:\\[()\[\]]|\$|\\[A-Za-z]{2,}).{0,30}")
    for page in pages:
        found = raw.findall(_text(page.read_text(encoding="utf-8")))
        assert not found, f"{page.relative_to(site.out)}: raw TeX in the text: {found[:3]}"


def _markdown_formulas(source):
    text = re.sub(r"```.*?```", "", source, flags=re.S)
    text = re.sub(r"`[^`\n]+`", "", text)
    return len(re.findall(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^$]+?\$", text, flags=re.S))


def test_every_formula_is_typeset_with_katex_served_by_the_site_itself(site):
    for md in sorted((ROOT / "docs" / "derivations").glob("*.md")):
        page = _article(_page(site.out, f"derivations/{md.stem}" if md.stem != "index"
                              else "derivations"))
        wrappers = re.findall(r'<(?:span|div) class="arithmatex">(.{0,40})', page)
        assert wrappers, f"derivations/{md.name}: no formula found"
        untypeset = [w for w in wrappers if not w.startswith(('<span class="katex">',
                                                              '<span class="katex-display">'))]
        assert not untypeset, f"derivations/{md.name}: formulas not typeset: {untypeset[:3]}"
    for name in _notebooks():
        expected = sum(_markdown_formulas(s) for s in _cells(name, "markdown"))
        typeset = _article(_page(site.out, f"notebooks/{name}")).count('<span class="katex">')
        assert typeset == expected, (
            f"notebooks/{name}: {expected} formulas in its markdown cells, {typeset} typeset")
    assert "assets/katex/katex.min.css" in _page(site.out, "derivations/lstm")
    assert (site.out / "assets/katex/katex.min.css").is_file()
    assert list((site.out / "assets/katex/fonts").glob("KaTeX_Main-Regular.woff2"))
    for page in site.out.rglob("index.html"):
        remote = re.findall(r'<script[^>]+src="(?:https?:)?//[^"]*"', page.read_text("utf-8"))
        assert not remote, f"{page.relative_to(site.out)} loads a script from the network: {remote}"


def test_every_notebook_page_shows_a_figure(site):
    notebooks = _notebooks()
    assert len(notebooks) == 7, notebooks
    for name in notebooks:
        page = _page(site.out, f"notebooks/{name}")
        figures = re.findall(r'<img [^>]*src="data:image/png;base64,', page)
        assert figures, f"notebooks/{name}: no figure (was the notebook executed?)"


def _solutions(name):
    """The lines (stripped, blank ones left out) of every solution region, in page order."""
    bodies = []
    for source in _cells(name, "code"):
        lines = source.split("\n")
        for begin, end in find_regions(source, name):
            bodies.append([line.strip() for line in lines[begin + 1:end] if line.strip()])
    return bodies


def _plain(fragment):
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_no_solution_is_shown_on_a_notebook_page(site):
    """The code of every solution region is folded, in full, and nowhere else in the cells'
    code: neither shown nor in the text the copy button copies. (Outputs may print values
    that a solution computed: they are not the answer.)"""
    folds = 0
    for name in _notebooks():
        page = _article(_page(site.out, f"notebooks/{name}"))
        fold = re.compile(r'<details class="solution">(.*?)</details>', flags=re.S)
        code = re.findall(r'<div class="highlight-ipynb[^"]*">(.*?)</div>', page, flags=re.S)
        folded = [_plain(f) for block in code for f in fold.findall(block)]
        shown = "\n".join(_plain(fold.sub("", block)) for block in code)
        copied = "\n".join(_plain(t) for t in re.findall(
            r'<div class="clipboard-copy-txt"[^>]*>(.*?)</div>', page, flags=re.S))
        bodies = _solutions(name)
        assert len(folded) == len(bodies), (
            f"notebooks/{name}: {len(bodies)} solution regions, {len(folded)} folded")
        for body, text in zip(bodies, folded):
            for line in body:
                assert line in text, f"notebooks/{name}: {line!r} is missing from its fold"
                assert line not in shown, f"notebooks/{name}: {line!r} is shown"
                assert line not in copied, f"notebooks/{name}: the copy button copies {line!r}"
        assert "BEGIN SOLUTION" not in shown + copied and "END SOLUTION" not in shown + copied
        assert copied.count("# YOUR CODE HERE") == len(bodies)
        folds += len(bodies)
    assert folds >= 15, folds


def test_derivation_paths_in_docstrings_are_links_that_resolve(site):
    linked = 0
    for page in sorted((site.out / "api").rglob("index.html")):
        html = _article(page.read_text(encoding="utf-8"))
        link = re.compile(
            r'<a [^>]*href="([^"]*)"[^>]*><code>(docs/[^<]*\.md(?:#[\w-]*)?)</code></a>')
        links = link.findall(html)
        # Left over: paths in the docstrings' text. (Source code and signatures may name one.)
        prose = re.sub(r"<(pre|code)\b.*?</\1>", "", link.sub("", html), flags=re.S)
        unlinked = re.findall(r"docs/[\w/-]+\.md[#\w-]*", prose)
        assert not unlinked, f"{page.relative_to(site.out)}: not links: {unlinked}"
        for href, path in links:
            target, _, anchor = (page.parent / href).resolve().as_posix().partition("#")
            target = Path(target) / "index.html" if not target.endswith(".html") else Path(target)
            assert target.is_file(), f"{page.relative_to(site.out)}: {path} -> {href}: no page"
            assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), (
                f"{page.relative_to(site.out)}: {path} -> {href}: no such heading")
            linked += 1
    assert linked >= 30, linked


def test_paths_in_table_cells_wrap_only_between_folders(site):
    page = _page(site.out, "classroom")
    assert ('<code><span class="nobr">minirnn/</span><wbr><span class="nobr">functional/</span>'
            '<wbr><span class="nobr">rnn.py</span></code>') in page


# --------------------------------------------------------------------------------------
# In a browser, offline
# --------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 700  # narrower than the widest formulas: they must scroll, not be cut off

# Served next to the site, the probe opens a page in a same-origin frame as wide as the
# screenshot, waits for its fonts and measures what the browser laid out.
PROBE = """<!doctype html><meta charset="utf-8">
<body style="margin:0">
<iframe id="f" src="site/PAGE" style="width:WIDTHpx;height:3000px;border:0"></iframe>
<pre id="result">pending</pre>
<script>
const frame = document.getElementById("f");
frame.addEventListener("load", async () => {
  const d = frame.contentDocument;
  await d.fonts.ready;
  const box = (el) => { const r = el.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
  const displays = [...d.querySelectorAll(".katex-display")].map((el) => ({
    box: box(el), overflowX: getComputedStyle(el).overflowX,
    fits: el.scrollWidth <= el.clientWidth + 1,
    text: el.querySelector(".katex-html").textContent.slice(0, 60),
  }));
  const fonts = [...d.fonts].filter((f) => f.status === "loaded").map((f) => f.family);
  document.getElementById("result").textContent = JSON.stringify({
    viewport: d.documentElement.clientWidth, displays, fonts,
    text: d.querySelector("article").innerText,
    mathFont: getComputedStyle(d.querySelector(".katex .mathnormal")).fontFamily,
  });
});
</script>
"""

BROWSE = """
set -e
cd "$1"
python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
for i in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', 8000), 1)" 2>/dev/null && break
  sleep 0.1
done
chrome() {
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$(mktemp -d -p "$1")" --window-size=$WIDTH,3000 "$@"
}
chrome --screenshot="$1/lstm.png" http://127.0.0.1:8000/site/derivations/lstm/ 2>/dev/null
for probe in lstm nb; do
  chrome --virtual-time-budget=20000 --dump-dom "http://127.0.0.1:8000/probe-$probe.html" \
    > "probe-$probe.out" 2>/dev/null
done
kill $server
"""


def _probe_result(path):
    dom = path.read_text(encoding="utf-8")
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.S)
    assert m and m.group(1) != "pending", f"the probe page did not finish: {dom[-500:]}"
    return json.loads(htmllib.unescape(m.group(1)))


@pytest.fixture(scope="module")
def browser(site):
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian's package chromium) for the screenshot test")
    for name, page in (("lstm", "derivations/lstm/"), ("nb", "notebooks/02_lstm/")):
        (site.root / f"probe-{name}.html").write_text(
            PROBE.replace("PAGE", page).replace("WIDTH", str(WIDTH)), encoding="utf-8")
    env = dict(os.environ, CHROMIUM=CHROMIUM, WIDTH=str(WIDTH))
    run = subprocess.run(offline(["sh", "-c", BROWSE, "browse", str(site.root)]), env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return SimpleNamespace(screenshot=site.root / "lstm.png",
                           lstm=_probe_result(site.root / "probe-lstm.out"),
                           notebook=_probe_result(site.root / "probe-nb.out"))


def _ink_rows(image, box):
    """For each pixel row of ``box`` in the screenshot: the longest run of dark pixels."""
    gray = image.convert("L")
    left, top, right, bottom = (int(box[k]) for k in ("left", "top", "right", "bottom"))
    runs = []
    for y in range(max(top, 0), min(bottom, gray.height)):
        best = run = 0
        for x in range(max(left, 0), min(right, gray.width)):
            run = run + 1 if gray.getpixel((x, y)) < 128 else 0
            best = max(best, run)
        runs.append(best)
    return runs


def test_the_lstm_page_shows_typeset_math_in_a_browser_offline(browser):
    """The math area is typeset, not raw text: KaTeX's fonts came from the site, the identity
    tanh(x/2) -> sigma(x) is drawn with fraction bars, and no formula is cut off."""
    from PIL import Image

    lstm = browser.lstm
    assert any(f.startswith("KaTeX_") for f in lstm["fonts"]), lstm["fonts"]
    assert lstm["mathFont"].startswith("KaTeX_Math"), lstm["mathFont"]
    for raw in ("\\(", "\\[", "$$", "\\frac", "\\tanh"):
        assert raw not in lstm["text"], f"raw TeX {raw!r} shown on the LSTM page"
    identity = [d for d in lstm["displays"] if "\u27f9" in d["text"]]  # the one with an arrow
    assert len(identity) == 1, [d["text"] for d in lstm["displays"]]
    image = Image.open(browser.screenshot)
    runs = _ink_rows(image, identity[0]["box"])
    assert max(runs) >= 40, (f"no fraction bar drawn in the identity's box {identity[0]['box']} "
                             f"of {browser.screenshot}")
    bar = runs.index(max(runs))
    assert max(runs[:bar], default=0) > 0 and max(runs[bar + 3:], default=0) > 0, (
        f"the fraction bar in {browser.screenshot} has nothing above or below it")
    for page in (lstm, browser.notebook):
        for d in page["displays"]:
            assert d["fits"] or d["overflowX"] in ("auto", "scroll"), (
                f"{d['text']!r} is wider than its box and does not scroll")
            assert d["box"]["right"] <= page["viewport"], f"{d['text']!r} runs off the page"
    exercise = [d for d in browser.notebook["displays"] if "H:2H" in d["text"].replace(" ", "")]
    assert exercise and not exercise[0]["fits"] and exercise[0]["overflowX"] == "auto", exercise


def test_only_the_kernel_teardown_race_is_left_out_of_the_build_warnings():
    race = (FIXTURES / "kernel_teardown.log").read_text(encoding="utf-8")
    assert build_warnings("INFO    -  built\n" + race + "INFO    -  done\n") == []
    other = race.replace("Socket operation on non-socket", "Address already in use")
    assert build_warnings(other) == [other.splitlines()[0]]
    assert build_warnings("WARNING -  a link to nowhere\n" + race) == [
        "WARNING -  a link to nowhere"]

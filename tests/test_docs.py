"""The documentation: a derivation page for every functional op, written in the code's
own names, and a site that `mkdocs build --strict` builds without a warning.

The symbol checks read the Markdown and the code only, so they always run. The build
tests need the `docs` extra (mkdocs-material, mkdocstrings, mkdocs-jupyter) and are
skipped without it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from minirnn import functional as F

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DERIVATIONS = DOCS / "derivations"

# The page that derives each family of ops (the longest matching prefix wins).
DERIVATION_PAGE = {
    "rnn": "rnn.md",
    "lstm": "lstm.md",
    "gru": "gru.md",
    "embedding": "embedding-affine-loss.md",
    "affine": "embedding-affine-loss.md",
    "softmax_cross_entropy": "embedding-affine-loss.md",
    "sigmoid_binary_cross_entropy": "embedding-affine-loss.md",
    "additive_attention": "attention.md",
    "convlstm": "convlstm.md",
    "conv2d_same": "convlstm.md",
    "im2col": "convlstm.md",
    "col2im": "convlstm.md",
    "sigmoid": "lstm.md",   # the stable sigmoid is derived on the LSTM page
    "tanh": "lstm.md",
    "layer_norm": "layer-norm.md",
    "gelu": "gelu.md",
    "causal_self_attention": "self-attention.md",
}

# DESIGN.md's functional contract: what every backward pass returns, in order.
DESIGN_GRADIENTS = {
    "rnn_step_backward": ("dx", "dh_prev", "dWx", "dWh", "db"),
    "rnn_backward": ("dx", "dh0", "dWx", "dWh", "db"),
    "lstm_step_backward": ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"),
    "lstm_backward": ("dx", "dh0", "dc0", "dWx", "dWh", "db"),
    "gru_step_backward": ("dx", "dh_prev", "dWx", "dWh", "dbx", "dbh"),
    "gru_backward": ("dx", "dh0", "dWx", "dWh", "dbx", "dbh"),
    "additive_attention_backward": ("dquery", "dkeys", "dWq", "dWk", "dv"),
    "embedding_backward": ("dW",),
    "affine_backward": ("dx", "dW", "db"),
    "softmax_cross_entropy": ("loss", "dlogits"),
    "sigmoid_binary_cross_entropy": ("loss", "dlogits"),
    "convlstm_step_backward": ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"),
    "convlstm_backward": ("dx", "dh0", "dc0", "dWx", "dWh", "db"),
    "conv2d_same_backward": ("dx", "dW"),
    "col2im": ("dx",),
    "layer_norm_backward": ("dx", "dgamma", "dbeta"),
    "gelu_backward": ("dx",),
    "causal_self_attention_backward": ("dx", "dWqkv", "dbqkv", "dWo", "dbo"),
}

OPS = list(F.__all__)


def page_of(op):
    prefixes = [p for p in DERIVATION_PAGE if op.startswith(p)]
    return DERIVATION_PAGE[max(prefixes, key=len)] if prefixes else None


def returned_names(func):
    """The names in the "Returns:" block of a functional docstring, in order.

    Two layouts occur: ``h: (N, H) ...; cache: ...`` (a name and a colon) and
    ``dx (N, D), dh_prev (N, H), ...`` (a name and its shape). Items are split at commas
    and semicolons outside brackets; the layout of the first item decides which items
    count, so prose such as "row (n, r, s)" in a ``name:`` block is not a name.
    """
    lines = (inspect.getdoc(func) or "").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Returns:"]
    if not starts:
        return []
    block = []
    for line in lines[starts[0] + 1:]:
        if line and not line[0].isspace():
            break
        block.append(line)
    items, depth, current = [], 0, ""
    for ch in " ".join(block):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch in ",;" and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    first = re.match(r"\s*[A-Za-z_]\w*\s*([:(])", items[0])
    if not first:
        return []
    pattern = r"\s*([A-Za-z_]\w*)\s*:" if first.group(1) == ":" else r"\s*([A-Za-z_]\w*)\s*\("
    return [m.group(1) for m in (re.match(pattern, it) for it in items) if m]


def code_names(func):
    """Every name a page about ``func`` must use: arguments, outputs, gradients."""
    names = list(inspect.signature(func).parameters) + returned_names(func)
    return [n for n in dict.fromkeys(names) if n != "cache"]


def page_symbols(markdown):
    """(names in `code spans`, names in $math$) of a page, fenced blocks left out.

    In math, ``d\\mathit{Wx}`` and ``\\mathrm{dout}`` count as ``dWx`` and ``dout``: the
    derivations set multi-letter names in italic as one symbol.
    """
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    code = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        code.update(re.findall(r"[A-Za-z_]\w*", span))
    text = re.sub(r"`[^`\n]+`", "", text)
    math = set()
    for display, inline in re.findall(r"\$\$(.+?)\$\$|\$([^$]+?)\$", text, flags=re.S):
        tex = re.sub(r"\\(?:mathit|mathrm|texttt|operatorname)\{([^{}]*)\}", r"\1",
                     display or inline)
        tex = re.sub(r"\\[A-Za-z]+", " ", tex).replace("{", "").replace("}", "")
        math.update(re.findall(r"[A-Za-z_]\w*", tex))
    return code, math


def missing_names(func, markdown):
    code, math = page_symbols(markdown)
    return [n for n in code_names(func) if n not in code and n not in math]


# --------------------------------------------------------------------------------------
# Derivation pages in the code's names
# --------------------------------------------------------------------------------------

def test_every_functional_op_has_a_derivation_page_that_names_it():
    for op in OPS:
        page = page_of(op)
        assert page is not None, f"{op} has no derivation page: add it to DERIVATION_PAGE"
        path = DERIVATIONS / page
        assert path.is_file(), f"{op}: {path} does not exist"
        code, _ = page_symbols(path.read_text(encoding="utf-8"))
        assert op in code, f"{path.name} never names `{op}` in a code span"


@pytest.mark.parametrize("op", OPS)
def test_derivation_page_uses_the_codes_argument_and_gradient_names(op):
    func = getattr(F, op)
    path = DERIVATIONS / page_of(op)
    missing = missing_names(func, path.read_text(encoding="utf-8"))
    assert not missing, (f"{path.name} derives {op}{inspect.signature(func)} but never "
                         f"uses these names of the code, as `name` or in math: {missing}")


@pytest.mark.parametrize("op", sorted(DESIGN_GRADIENTS))
def test_docstring_returns_match_the_design_contract(op):
    """Also guards the parser above: an empty parse would make the page check vacuous."""
    assert tuple(returned_names(getattr(F, op))) == DESIGN_GRADIENTS[op]


def test_the_symbol_check_fails_a_page_that_uses_other_names():
    text = (DERIVATIONS / "rnn.md").read_text(encoding="utf-8")
    assert missing_names(F.rnn_step_backward, text) == []
    # `dWx` is written `dWx` in code and d\mathit{Wx} in math: both must go to fail
    renamed = text.replace("dh_prev", "dprev_h").replace("dWx", "dW_x")
    assert missing_names(F.rnn_step_backward, renamed) == ["dh_prev"]
    renamed = renamed.replace(r"d\mathit{Wx}", r"dW_{x}")
    assert missing_names(F.rnn_step_backward, renamed) == ["dh_prev", "dWx"]


def test_every_op_is_listed_on_the_derivations_index():
    code, _ = page_symbols((DERIVATIONS / "index.md").read_text(encoding="utf-8"))
    families = {op.rsplit("_forward", 1)[0].rsplit("_backward", 1)[0] for op in OPS}
    # the index writes pairs as `rnn_step_forward/backward`, `embedding_*`
    listed = {re.sub(r"_(forward|backward)$", "", name).rstrip("_") for name in code}
    unlisted = sorted(f for f in families - listed if f not in ("sigmoid", "tanh"))
    assert not unlisted, f"docs/derivations/index.md does not list: {unlisted}"


# --------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(docs_site):
    """The session's build (tests/conftest.py): (folder, mkdocs' status, its log)."""
    return docs_site.out, docs_site.returncode, docs_site.log


def test_mkdocs_build_strict_passes_without_warnings(site, docs_site):
    out, returncode, log = site
    assert returncode == 0 and not docs_site.warnings, \
        "mkdocs build --strict failed:\n" + log[-6000:]


def _article(html_file):
    html = html_file.read_text(encoding="utf-8")
    m = re.search(r"<article.*?</article>", html, flags=re.S)
    return m.group(0) if m else html


def test_every_formula_reaches_mathjax_and_no_dollar_is_left_over(site):
    out, returncode, log = site
    assert returncode == 0, log[-3000:]
    for md in sorted(DOCS.rglob("*.md")):
        rel = md.relative_to(DOCS)
        if rel.parts[0] in ("api", "notebooks", "templates"):
            continue
        text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"`[^`\n]+`", "", text)
        display = len(re.findall(r"\$\$.+?\$\$", text, flags=re.S))
        inline = len(re.findall(r"\$[^$]+?\$", re.sub(r"\$\$.+?\$\$", "", text, flags=re.S)))
        page = rel.with_suffix("")
        html_file = out / (page.parent if page.name == "index" else page) / "index.html"
        html = _article(html_file)
        assert (html.count('<div class="arithmatex">'),
                html.count('<span class="arithmatex">')) == (display, inline), (
            f"{rel}: {display} display and {inline} inline formulas in the Markdown, "
            "but arithmatex made a different number of them")
        rest = re.sub(r'<(span|div) class="arithmatex">.*?</\1>|<pre.*?</pre>|<code.*?</code>',
                      "", html, flags=re.S)
        assert "$" not in rest, f"{rel}: a $ reached the page as text"


def test_api_reference_documents_every_functional_op(site):
    out, returncode, log = site
    assert returncode == 0, log[-3000:]
    pages = "".join(p.read_text(encoding="utf-8")
                    for p in (out / "api" / "functional").rglob("index.html"))
    for op in OPS:
        module = getattr(F, op).__module__
        assert f'id="{module}.{op}"' in pages, f"the API reference has no entry for {module}.{op}"


def test_the_seven_notebooks_are_rendered_pages(site):
    out, returncode, log = site
    assert returncode == 0, log[-3000:]
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    notebooks = re.findall(r"notebooks/(\w+)\.ipynb", nav)
    assert len(notebooks) == 7, notebooks
    for name in notebooks:
        page = out / "notebooks" / name / "index.html"
        assert page.is_file(), f"notebooks/{name}.ipynb was not rendered"
        assert "jupyter-wrapper" in page.read_text(encoding="utf-8")
    assert not list((out / "notebooks").glob("*.py")), "a notebook's .py twin was published"

// MathJax 3 for the site.
//
// Markdown pages: pymdownx.arithmatex (generic mode) puts every formula in an element
// of class "arithmatex", delimited by \( \) or \[ \].
// Notebook pages (mkdocs-jupyter): the Markdown cells keep Jupyter's $ and $$ and sit
// in elements of class "jp-RenderedMarkdown" (LaTeX outputs: "jp-RenderedLatex").
//
// MathJax skips every element whose class matches ignoreHtmlClass, and everything
// inside it, unless the element's class matches processHtmlClass; an element with no
// class keeps the state of its parent. So only those three kinds of element are
// typeset, and a "$" anywhere else on a page stays text.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex",
  },
};

// With Material's instant navigation a page is swapped in without a reload:
// typeset again whenever a new document is shown.
if (typeof document$ !== "undefined") {
  document$.subscribe(function () {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}

// The KaTeX side of docs/hooks/typeset_math.py: one process for a whole docs build, given
// the folder of the katex package. Each line on stdin is a JSON array of {tex, display};
// for each line, one line on stdout with a JSON array, in the same order, of {html} or
// {error} (KaTeX's message).
"use strict";
const katex = require(process.argv[2]);
const readline = require("readline");

const options = { throwOnError: true, strict: "error", output: "htmlAndMathml" };

readline.createInterface({ input: process.stdin, terminal: false }).on("line", (line) => {
  const results = JSON.parse(line).map(({ tex, display }) => {
    try {
      return { html: katex.renderToString(tex, { ...options, displayMode: display }) };
    } catch (err) {
      return { error: err.message };
    }
  });
  process.stdout.write(JSON.stringify(results) + "\n");
});

"""Names in table cells wrap only at their joints, never inside a name.

Material lets code break anywhere (``word-break: break-word``), so a narrow column splits a
path as "minirnn/functional/rn" / "n.py", and a hyphen is a break too ("--" / "encoding").
Here each code span in a table cell is cut into pieces that do not break (class "nobr",
docs/stylesheets/extra.css), with a break opportunity (``<wbr>``) after each ``/`` and
``::``, and, in a name longer than LONG characters (a test's name), after each ``_``.
Spaces stay breaks. The text, and so what a reader copies, is unchanged.
"""

from __future__ import annotations

import re

LONG = 40
CELL = re.compile(r"<t([dh])\b[^>]*>.*?</t\1>", re.S)
CODE = re.compile(r"<code>([^<]*)</code>")
JOINTS = re.compile(r"(?<=/)|(?<=::)")
LONG_JOINTS = re.compile(r"(?<=/)|(?<=::)|(?<=_)")


def split_name(word):
    return (LONG_JOINTS if len(word) > LONG else JOINTS).split(word)


def wrap_code(text):
    out = []
    for token in re.split(r"(\s+)", text):
        if not token or token.isspace():
            out.append(token)
        else:
            out.append("<wbr>".join(f'<span class="nobr">{piece}</span>'
                                    for piece in split_name(token) if piece))
    return "".join(out)


def on_page_content(html, page, config, files):
    return CELL.sub(lambda cell: CODE.sub(lambda m: f"<code>{wrap_code(m.group(1))}</code>",
                                          cell.group(0)), html)

"""Solution regions: the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.

The markers are nbgrader's, so the same convention serves the library's source files and
the notebooks' cells. ``strip_solutions`` replaces each region with a stub at the
region's indentation, exactly as nbgrader does:

    ### BEGIN SOLUTION              ->    # YOUR CODE HERE
    h = xp.tanh(x @ Wx + ...)              raise NotImplementedError()
    ### END SOLUTION

(in a markdown cell the stub is the line ``YOUR ANSWER HERE``).
"""

from __future__ import annotations

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)


def find_regions(text, where="text"):
    """``[(begin_line, end_line), ...]`` (0-based line numbers of the two markers).

    where: names the file or cell in error messages.
    Raises ValueError for an END without a BEGIN, a BEGIN inside a region, or a
    region never closed, naming the line.
    """
    regions, start = [], None
    for n, line in enumerate(text.splitlines()):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise ValueError(f"{where}: line {n + 1}: {BEGIN!r} inside the region opened "
                                 f"on line {start + 1}; close it with {END!r} first")
            start = n
        elif marker == END:
            if start is None:
                raise ValueError(f"{where}: line {n + 1}: {END!r} without a {BEGIN!r} above it")
            regions.append((start, n))
            start = None
    if start is not None:
        raise ValueError(f"{where}: line {start + 1}: {BEGIN!r} is never closed by {END!r}")
    return regions


def strip_solutions(text, where="text", stub=CODE_STUB):
    """``text`` with every solution region (markers included) replaced by ``stub`` lines
    indented like the region's BEGIN marker. Returns ``(new_text, number_of_regions)``."""
    regions = find_regions(text, where)
    if not regions:
        return text, 0
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    out, pos = [], 0
    for begin, end in regions:
        out.extend(lines[pos:begin])
        marker = lines[begin]
        indent = marker[:len(marker) - len(marker.lstrip())]
        out.extend(indent + s + newline for s in stub)
        pos = end + 1
    out.extend(lines[pos:])
    result = "".join(out)
    if not text.endswith(("\n", "\r")) and result.endswith(newline):
        result = result[:-len(newline)]  # a cell's last line has no newline
    return result, len(regions)

"""Show the benchmark report (``benchmarks/results/results.md``) in the docs.

The report is Markdown. :func:`markdown_to_rst` converts the subset it uses
(headings, paragraphs, bullet lists, pipe tables, images, inline code, bold and
links) to reStructuredText; :func:`write_include` checks the result with
docutils and falls back to showing the Markdown source verbatim, so that a
change in the report can never break the documentation build.
"""

import os
import re
from pathlib import Path

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"(`+)(.+?)\1")


def _inline(text):
    """Convert the inline Markdown of one line of text to reStructuredText."""
    parts, last = [], 0
    for match in _CODE.finditer(text):
        parts.append(_plain(text[last : match.start()]))
        code = match.group(2).strip()
        parts.append(f"``{code}``" if code else "")
        last = match.end()
    parts.append(_plain(text[last:]))
    return "".join(parts)


def _plain(text):
    links = []

    def keep_link(match):
        links.append(f"`{match.group(1)} <{match.group(2)}>`__")
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep_link, text)
    # **bold** and *emphasis* mean the same in both languages: keep them.
    marked = re.split(r"(\*\*[^*\s][^*]*\*\*|\*[^*\s][^*]*\*)", text)
    out = []
    for piece in marked:
        if re.fullmatch(r"\*\*[^*\s][^*]*\*\*|\*[^*\s][^*]*\*", piece):
            out.append(piece)
            continue
        piece = piece.replace("\\", "\\\\")
        for char in "*|`":
            piece = piece.replace(char, "\\" + char)
        piece = re.sub(r"_(?=\W|$)", r"\\_", piece)
        out.append(piece)
    text = "".join(out)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def _table(rows):
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    header, body = cells[0], [r for r in cells[2:]]
    width = len(header)
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        row = (row + [""] * width)[:width]
        for i, cell in enumerate(row):
            lead = "   * - " if i == 0 else "     - "
            text = _inline(cell)
            if re.match(r"^([-+]|\d+[.)](\s|$))", text):
                text = "\\" + text  # not a list item
            lines.append(lead + (text or "\\ "))
    return [*lines, ""]


def markdown_to_rst(text, image_prefix):
    """Convert the benchmark report's Markdown to reStructuredText."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            out += ["", *_table(block)]
            continue
        heading = re.match(r"^(#+)\s+(.*)$", stripped)
        image = _IMAGE.match(stripped)
        if heading:
            out += ["", f".. rubric:: {_inline(heading.group(2))}", ""]
        elif image:
            out += ["", f".. image:: {image_prefix}/{image.group(2)}", "   :width: 80%"]
            out += [f"   :alt: {image.group(1)}", ""]
        elif re.match(r"^[-*]\s+", stripped):
            if out and out[-1] and not out[-1].startswith("- "):
                out.append("")
            out.append("- " + _inline(re.sub(r"^[-*]\s+", "", stripped)))
        elif stripped:
            if out and out[-1].startswith("- "):
                out.append("")
            out.append(_inline(stripped))
        else:
            out.append("")
        i += 1
    return "\n".join(out) + "\n"


def _is_clean(rst):
    """Whether docutils parses ``rst`` without any warning."""
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    # ``image`` paths are not checked by a bare parse; everything else is.
    try:
        publish_doctree(
            rst,
            settings_overrides={
                "report_level": 5,
                "halt_level": 2,
                "warning_stream": False,
            },
        )
    except (SystemMessage, Exception):
        return False
    return True


def write_include(results_dir, target, srcdir):
    """Write ``target`` (an rst fragment) showing the benchmark report, if any."""
    results_dir, target = Path(results_dir), Path(target)
    report = results_dir / "results.md"
    # Sphinx reads "/x" relative to the source directory (doc/).
    rel = Path("/") / os.path.relpath(results_dir.resolve(), Path(srcdir).resolve())
    if report.is_file():
        converted = markdown_to_rst(report.read_text(), rel.as_posix())
        missing = [
            name
            for name in re.findall(r"^\.\. image:: \S+/([^/\s]+)$", converted, re.M)
            if not (results_dir / name).is_file()
        ]
        if _is_clean(converted) and not missing:
            text = converted
        else:
            text = "\n".join(
                [
                    f".. literalinclude:: {rel.as_posix()}/results.md",
                    "   :language: markdown",
                    "",
                ]
            )
    else:
        text = "\n".join(
            [
                ".. note::",
                "",
                "   No benchmark report was found when these pages were built.",
                "   Produce it with ``python -m benchmarks.run`` (see above); the",
                "   report ``benchmarks/results/results.md`` then appears here.",
                "",
            ]
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)
    return report.is_file()

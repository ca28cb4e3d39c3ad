"""A self-contained HTML report: headings, text, tables, figures embedded as PNG, links to files next to it.

Nothing is loaded from the network (no scripts, no fonts), so it opens offline and can be mailed
as one file; the links to maps and arrays are relative, so they work while the report stays in
its folder.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from urllib.parse import quote

from matplotlib.figure import Figure

from ..io.atomic import atomic_write
from .figures import png_bytes

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; max-width: 520px; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.left, th.left { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em .8em; }
code { background: #f4f4f4; padding: 0 .25em; }
"""


class HtmlReport:
    """Build a report piece by piece, then ``write`` it; ``files`` lists every file it links to."""

    def __init__(self, title: str, folder: str | os.PathLike):
        self.title = title
        self.folder = Path(folder)
        self.parts: list[str] = []
        self.files: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, note: bool = False) -> None:
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")

    def link(self, path: str | os.PathLike, label: str | None = None) -> str:
        """An anchor to ``path`` (a file in or under the report's folder), recorded in ``files``."""
        relative = Path(os.path.relpath(Path(path), self.folder)).as_posix()
        self.files.append(relative)
        return f'<a href="{html.escape(quote(relative))}">{html.escape(label or relative)}</a>'

    def links(self, paths, label: str = "") -> None:
        """A paragraph of links to ``paths``, introduced by ``label``."""
        anchors = ", ".join(self.link(p, Path(p).name) for p in paths)
        self.parts.append(f"<p>{html.escape(label)} {anchors}</p>")

    def figure(self, figure: Figure, caption: str = "", save_as: str | os.PathLike | None = None) -> None:
        """Embed ``figure`` as a PNG; ``save_as`` also writes the PNG there and links it from the caption."""
        data = png_bytes(figure)
        link = ""
        if save_as is not None:
            with atomic_write(save_as) as f:
                f.write(data)
            link = " (" + self.link(save_as, "PNG") + ")"
        encoded = base64.b64encode(data).decode("ascii")
        self.parts.append(f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)}{link}</figcaption></figure>")

    def table(self, header, rows, left: int = 1) -> None:
        """A table; the first ``left`` columns are left-aligned. Cells are text, or HTML made by ``link``."""
        def cell(value, i, tag):
            css = ' class="left"' if i < left else ""
            text = value if isinstance(value, _Html) else html.escape(str(value))
            return f"<{tag}{css}>{text}</{tag}>"

        head = "".join(cell(h, i, "th") for i, h in enumerate(header))
        body = "".join("<tr>" + "".join(cell(v, i, "td") for i, v in enumerate(row)) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def html(self) -> str:
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_write(path, "w") as f:
            f.write(self.html())
        return path


class _Html(str):
    """Text that is already HTML (a link) and goes into a table as it is."""


def html_link(report: HtmlReport, path, label: str | None = None) -> str:
    """A link for a table cell of ``report``."""
    return _Html(report.link(path, label))

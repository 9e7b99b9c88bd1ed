"""A self-contained HTML report: figures embedded as base64 PNG, no server, no external files.

The report is one ``.html`` file that a researcher can e-mail or open from a cluster's
scratch folder: images are inlined as ``data:image/png;base64`` URIs, the style sheet is
inline, and there is no JavaScript. Sections lay their figures out side by side (one column
per model or layer) so runs can be compared at a glance.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Section", "figure_to_png_base64", "render_report", "write_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1500px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; }
.row { display: grid; gap: 1em; align-items: start; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; text-align: center; margin-top: 0.3em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
"""


@dataclass
class Section:
    """One section of the report.

    Parameters
    ----------
    title : str
        Heading.
    text : str, optional
        Paragraph(s) of plain text (escaped; blank lines separate paragraphs).
    figures : sequence of (caption, figure) pairs
        ``figure`` is a matplotlib ``Figure``, PNG bytes, or a path to a PNG file.
    columns : int, optional
        Figures per row (default: all figures of the section in one row, at most 3).
    table : sequence of mappings, optional
        Rows of a table (one mapping per row, keys = column names); floats are formatted
        with 3 significant digits, None shows as "–".
    """

    title: str
    text: str = ""
    figures: Sequence[tuple[str, Any]] = field(default_factory=list)
    columns: int | None = None
    table: Sequence[Mapping[str, Any]] | None = None


def figure_to_png_base64(fig: Any, dpi: int = 110) -> str:
    """Encode a matplotlib figure, PNG bytes, or a PNG file as a base64 string.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or bytes or str or pathlib.Path
    dpi : int, default 110
        Resolution when rendering a Figure.

    Returns
    -------
    str
        Base64 (ASCII) of the PNG bytes.
    """
    if isinstance(fig, bytes | bytearray):
        data = bytes(fig)
    elif isinstance(fig, str | Path):
        data = Path(fig).read_bytes()
    elif hasattr(fig, "savefig"):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        data = buf.getvalue()
    else:
        raise TypeError(
            f"cannot embed {type(fig).__name__!r}: expected a matplotlib Figure, PNG bytes or "
            "a path to a PNG file"
        )
    if not data.startswith(b"\x89PNG"):
        raise ValueError(
            "only PNG images can be embedded (the data does not start with a PNG header)"
        )
    return base64.b64encode(data).decode("ascii")


def _format_cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.4g}"
    return html.escape(str(value))


def _table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    head = "".join(
        f'<th class="{"name" if i == 0 else ""}">{html.escape(str(c))}</th>'
        for i, c in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"name" if i == 0 else ""}">{_format_cell(row.get(c))}</td>'
            for i, c in enumerate(columns)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section_html(section: Section, dpi: int) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    for para in (p.strip() for p in section.text.split("\n\n")):
        if para:
            parts.append(f"<p>{html.escape(para)}</p>")
    if section.table:
        parts.append(_table_html(section.table))
    if section.figures:
        ncol = section.columns or min(len(section.figures), 3)
        parts.append(f'<div class="row" style="grid-template-columns: repeat({ncol}, 1fr);">')
        for caption, fig in section.figures:
            b64 = figure_to_png_base64(fig, dpi=dpi)
            alt = html.escape(caption, quote=True)
            parts.append(
                f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}"/>'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def render_report(
    title: str, sections: Sequence[Section], subtitle: str = "", dpi: int = 110
) -> str:
    """Render sections into one self-contained HTML document (a string).

    Parameters
    ----------
    title : str
    sections : sequence of Section
    subtitle : str, optional
        A line under the title (e.g. store paths, wall time).
    dpi : int, default 110

    Returns
    -------
    str
    """
    from latentgeo import __version__

    for s in sections:
        if not isinstance(s, Section):
            raise TypeError(f"sections must hold Section objects, got {type(s).__name__}: {s!r}")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = html.escape(f"{subtitle + ' · ' if subtitle else ''}latentgeo {__version__} · {stamp}")
    body = "\n".join(_section_html(s, dpi) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="meta">{meta}</p>\n{body}\n</body></html>\n'
    )


def write_report(
    path: str | Path,
    title: str,
    sections: Sequence[Section],
    subtitle: str = "",
    dpi: int = 110,
) -> Path:
    """Write a self-contained HTML report to ``path`` (parent folders are created).

    Parameters
    ----------
    path : str or pathlib.Path
        Destination ``.html`` file.
    title : str
    sections : sequence of Section
    subtitle : str, optional
    dpi : int, default 110

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report path must end in .html, got {str(path)!r}")
    text = render_report(title, sections, subtitle=subtitle, dpi=dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so a reader (a browser refreshing) never sees half a report.
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

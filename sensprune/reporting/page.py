"""The HTML page of a report: sections of HTML and lazily drawn figures, rendered into one self-contained file.

Used by every report builder (:mod:`sensprune.reporting.build` for score and selection folders,
:mod:`sensprune.reporting.bench` for bench folders).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Callable

import numpy as np


class Page:
    """Sections of HTML plus the figures to draw (drawn lazily so a progress bar can follow)."""

    def __init__(self, title: str, fig_dir: Path, href_prefix: str):
        self.title, self.fig_dir, self.href_prefix = title, fig_dir, href_prefix
        self.parts: list[str | tuple[str, str, Callable[[Path], Any]]] = []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str, cls: str = "") -> None:
        self.parts.append(f"<p class='{cls}'>{html.escape(text)}</p>")

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def figure(self, name: str, caption: str, draw: Callable[[Path], Any]) -> None:
        self.parts.append((name, caption, draw))

    def render(self, progress: bool) -> str:
        from sensprune.progress import progress_bar

        figs = [p for p in self.parts if isinstance(p, tuple)]
        bar = progress_bar(total=len(figs), desc="report figures", delay=2, enabled=progress)
        body = []
        try:
            for part in self.parts:
                if isinstance(part, str):
                    body.append(part)
                    continue
                name, caption, draw = part
                path = self.fig_dir / f"{name}.png"
                draw(path)
                bar.update(1)
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                href = html.escape(self.href_prefix + path.name)
                body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}' "
                            f"data-file='{href}'><figcaption>{html.escape(caption)} "
                            f"(<a href='{href}'>{html.escape(path.name)}</a>)</figcaption></figure>")
        finally:
            bar.close()
        return _TEMPLATE.format(title=html.escape(self.title), body="\n".join(body))


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1240px; margin: 1em auto; padding: 0 1em; color: #222; }}
figure {{ display: inline-block; vertical-align: top; margin: 0.5em 0.5em 0.5em 0; max-width: 100%; }}
img {{ max-width: 100%; }} figcaption {{ font-size: 0.85em; color: #555; max-width: 600px; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }} td.num {{ text-align: right; }}
.note {{ background: #fff6d5; padding: 0.4em 0.8em; border-left: 4px solid #e0b000; }}
pre {{ background: #f4f4f4; padding: 0.6em; white-space: pre-wrap; }}
</style></head>
<body data-images-ok="pending">
<h1>{title}</h1>
{body}
<script>
function sensprunecheckImages() {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.dataset.imagesOk = ok ? "yes" : "no";
  document.body.dataset.imagesCount = String(imgs.length);
}}
if (document.readyState === "complete") sensprunecheckImages();
else window.addEventListener("load", sensprunecheckImages);
</script>
</body></html>
"""


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool):
            text = f"{v:.4g}" if isinstance(v, (float, np.floating)) else f"{v}"
            return f"<td class='num'>{text}</td>"
        return f"<td>{html.escape(str(v))}</td>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"

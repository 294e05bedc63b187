"""The report's three file formats, each an adapter over the same layout (alerts/reports/layout.py):

- CSV: one UTF-8 file with a byte-order mark (Excel then reads the Chinese names right), the header
  lines, then each section as `# title`, its header row and its rows, a blank line between.
- XLSX (openpyxl): a sheet per section, the header lines on the first, bold headers, frozen panes.
- PDF (fpdf2): A4 landscape, tables, with Noto Sans CJK SC embedded (subset) so Chinese names
  render anywhere. fpdf2 reads the CFF-outline OpenType collection Debian ships (fonts-noto-cjk)
  through fontTools; reportlab's TTFont cannot (TrueType outlines only).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Callable
from pathlib import Path

from alerts.reports.layout import Cell, Table, header_lines, tables, title
from alerts.reports.model import Report

FORMATS = ("csv", "xlsx", "pdf")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
FONT_DIR = Path("/usr/share/fonts/opentype/noto")
FONT_FILE = "NotoSansCJK-Regular.ttc"  # one face: a bold one would double the time (parse and subset)
FONT_FACE = "Noto Sans CJK SC"  # the simplified-Chinese face of the collection


class FontMissing(RuntimeError):
    """The CJK font for the PDF is not installed (scripts/install-system-deps.sh: fonts-noto-cjk)."""


def render_csv(r: Report) -> bytes:
    """The report as one sectioned CSV, UTF-8 with a BOM."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for key, value in header_lines(r):
        w.writerow((key, value))
    for t in tables(r):
        w.writerow(())
        w.writerow((f"# {t.title}",))
        w.writerow(t.header)
        w.writerows(_plain(row) for row in t.rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _plain(row: tuple[Cell, ...]) -> tuple[Cell, ...]:
    return tuple("" if v is None else v for v in row)


def render_xlsx(r: Report) -> bytes:
    """The report as a workbook, one sheet per section."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    bold = Font(bold=True)
    for i, t in enumerate(tables(r)):
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = t.name
        if i == 0:
            for key, value in header_lines(r):
                ws.append((key, value))
            ws.append(())
        ws.append(t.header)
        head = ws.max_row
        for cell in ws[head]:
            cell.font = bold
        for row in t.rows:
            ws.append(row)
        ws.freeze_panes = ws.cell(row=head + 1, column=1)
        for col, width in zip("ABCDEFGHIJKLMNOPQRS", _widths(t), strict=False):
            ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _widths(t: Table, header: bool = True) -> list[float]:
    """Column widths from the longest text of the first rows (CJK characters count double), the
    header's included unless it may wrap."""
    sample = [*([t.header] if header else []), *t.rows[:200]]
    widths = []
    for c in range(len(t.header)):
        longest = max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in _text(row[c])) for row in sample)
        widths.append(min(max(longest + 2, 9), 48))
    return widths


@functools.cache
def _face_index(path: Path) -> int:
    """The index of the simplified-Chinese face in a font collection."""
    from fontTools.ttLib import TTCollection

    with TTCollection(str(path), lazy=True) as collection:
        for i, font in enumerate(collection.fonts):
            if font["name"].getDebugName(1) == FONT_FACE:  # the family; name 4 adds "Bold"
                return i
    raise FontMissing(f"{path} holds no {FONT_FACE!r}")


def _font_path() -> Path:
    path = FONT_DIR / FONT_FILE
    if not path.exists():
        raise FontMissing(f"CJK font not installed: {path} (Debian package fonts-noto-cjk)")
    return path


def render_pdf(r: Report) -> bytes:
    """The report as an A4 landscape PDF with the CJK font embedded."""
    from fpdf import FPDF

    # fontTools' subsetter logs every glyph list at INFO: pages of log per PDF in a service at INFO
    logging.getLogger("fontTools").setLevel(logging.WARNING)

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_auto_page_break(False)  # _grid breaks pages itself, between rows, repeating the header
    path = _font_path()
    pdf.add_font("cjk", fname=str(path), collection_font_number=_face_index(path))
    pdf.set_title(title(r))
    pdf.set_creator("hazmon")
    pdf.set_draw_color(160, 160, 160)
    pdf.add_page()
    pdf.set_font("cjk", "", 16)
    pdf.cell(h=9, text=title(r), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", "", 9)
    for key, value in header_lines(r)[1:]:
        pdf.cell(h=5, text=f"{key}: {value}", new_x="LMARGIN", new_y="NEXT")
    for t in tables(r):
        pdf.ln(3)
        if pdf.get_y() + 25 > pdf.h - PAGE_FOOT:  # a section title is not left alone at a page's foot
            pdf.add_page()
        pdf.set_font("cjk", "", 12)
        pdf.cell(h=7, text=t.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", "", 7 if len(t.header) > 8 else 8)
        if not t.rows:
            pdf.cell(h=5, text="(无 none)", new_x="LMARGIN", new_y="NEXT")
            continue
        _grid(pdf, t)
    return bytes(pdf.output())


ROW_H = 4.4  # mm
PAGE_FOOT = 12  # mm kept free at the foot of a page


def _grid(pdf, t: Table) -> None:
    """One table as a grid of single-line cells (a value too wide is cut with "…"), its header
    wrapped and repeated on each page. fpdf2's table() lays out every cell as a paragraph, eight
    times slower on the thousands of cells of a district's day; a grid of values needs no more."""
    weights = _widths(t, header=False)
    scale = pdf.epw / sum(weights)
    widths = [w * scale for w in weights]
    pad = 2 * pdf.c_margin

    def header() -> None:
        lines = max(
            len(pdf.multi_cell(w, ROW_H, h, dry_run=True, output="LINES"))
            for w, h in zip(widths, t.header, strict=True)
        )
        height = lines * (ROW_H - 0.6) + 0.6
        x, y = pdf.l_margin, pdf.get_y()
        pdf.set_fill_color(225, 230, 240)
        for w, text in zip(widths, t.header, strict=True):
            pdf.rect(x, y, w, height, style="DF")
            pdf.set_xy(x, y + 0.3)
            pdf.multi_cell(w, ROW_H - 0.6, text, new_x="RIGHT", new_y="TOP")
            x += w
        pdf.set_xy(pdf.l_margin, y + height)

    header()
    bottom = pdf.h - PAGE_FOOT
    for row in t.rows:
        if pdf.get_y() + ROW_H > bottom:
            pdf.add_page()
            header()
        for w, v in zip(widths, row, strict=True):
            text = _text(v)
            if text and pdf.get_string_width(text) > w - pad:
                while text and pdf.get_string_width(text + "…") > w - pad:
                    text = text[:-1]
                text += "…"
            pdf.cell(w, ROW_H, text, border=1)
        pdf.ln(ROW_H)


def _text(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


RENDERERS: dict[str, Callable[[Report], bytes]] = {"csv": render_csv, "xlsx": render_xlsx, "pdf": render_pdf}

"""A minimal OpenDocument spreadsheet writer for the tests (no dependency): a zip holding
``mimetype``, ``content.xml`` and ``META-INF/manifest.xml``, with typed date, time and
float cells as LibreOffice writes them."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

Cell = str | int | float | dt.date | dt.datetime | dt.time | None

_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
 manifest:version="1.2">
 <manifest:file-entry manifest:full-path="/"
  manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>
 <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>
"""

_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content
 xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 office:version="1.2">
<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>
</office:document-content>
"""


def _cell(value: Cell) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, dt.datetime):
        typed = f'office:value-type="date" office:date-value="{value.isoformat()}"'
        shown = value.strftime("%m/%d/%Y %I:%M %p")
    elif isinstance(value, dt.date):
        typed = f'office:value-type="date" office:date-value="{value.isoformat()}"'
        shown = value.strftime("%m/%d/%Y")
    elif isinstance(value, dt.time):
        iso = f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
        typed = f'office:value-type="time" office:time-value="{iso}"'
        shown = value.strftime("%I:%M %p")
    elif isinstance(value, int | float):
        typed = f'office:value-type="float" office:value="{value}"'
        shown = str(value)
    else:
        typed = 'office:value-type="string"'
        shown = value
    return f"<table:table-cell {typed}><text:p>{escape(shown)}</text:p></table:table-cell>"


def write_ods(path: Path, sheets: dict[str, Sequence[Sequence[Cell]]]) -> Path:
    """Write ``sheets`` (name -> rows, the first row the header) as an .ods file at ``path``."""
    tables = "".join(
        f"<table:table table:name={quoteattr(name)}>"
        + "".join(
            "<table:table-row>" + "".join(_cell(value) for value in row) + "</table:table-row>"
            for row in rows
        )
        + "</table:table>"
        for name, rows in sheets.items()
    )
    with zipfile.ZipFile(path, "w") as archive:
        # The mimetype comes first and uncompressed, so a reader can tell the format by it.
        archive.writestr(
            "mimetype",
            "application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        archive.writestr("META-INF/manifest.xml", _MANIFEST, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(
            "content.xml", _CONTENT.format(tables=tables), compress_type=zipfile.ZIP_DEFLATED
        )
    return path

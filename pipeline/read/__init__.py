"""Read: the first stage.

Takes reservation files (CSV, Parquet, or a .xlsx/.xls/.ods workbook) and the config's column
mapping and ``[input]`` settings (or, per file, those of its ``[sources.NAME]``); gives one
table of the canonical columns as text, check-in and check-out as ISO text, each row's
``[input.skip]`` mark, file and line, for planning: ``files.py`` (the stage in order),
``sources.py`` (which settings read which file), ``encodings.py`` (a CSV's text encoding),
``misencoded.py`` (bytes of another encoding), ``mojibake.py`` (text read in the wrong
encoding), ``headers.py`` (headers against the config), ``layout.py`` (the header row, the
rows after the data), ``dates.py`` (dates and times as exports write them), ``workbooks.py``,
``exclusions.py``. A file that can't be read, lacks a column, holds bytes or text of another
encoding or has dates that read two ways is an InputFileError (exit 2); a bad value is left
to planning.
"""

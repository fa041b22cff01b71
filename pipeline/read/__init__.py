"""Read: the first stage.

Takes reservation files (CSV or Parquet) and the config's column mapping; gives one table of
the canonical columns as text, with each row's file and line, for planning. A file that can't
be read, or lacks a column, is an InputFileError (exit 2); a bad value is left to planning.
"""

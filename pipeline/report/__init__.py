"""Report: the last stage, what a run did and what needs a person.

Takes the plan and apply results and the ledger; gives the status refresh of the ledger's codes
(``status``), the report of runs, doors and codes needing attention (``summary``) with who needs
a person and the fix (``people``, ``fixes``), the guest → PIN hand-off (``pins``), the nightly
summary (``nightly``), the files (``files``: tables and the report, mode 0600, written
atomically), the report as one HTML page with charts (``html``: its data from ``page_data``,
its charts from ``charts``) and what the terminal shows (``output``, ``people_output``,
``sending``: summaries, progress, log lines).
"""

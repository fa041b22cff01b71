"""Report: the last stage, what a run did and what needs a person.

Takes the plan and apply results and the ledger (its codes' statuses refreshed by ``status``);
gives the report of runs, doors and codes needing attention (``summary``) with who needs a
person and the fix (``people``, ``fixes``), the guest → PIN hand-off (``pins``), the nightly
summary (``nightly``), the report's files (``files``), and the report as one HTML page with
charts (``html``: its data from ``page_data``, its charts from ``charts``). What the terminal
shows is the command line's (``pipeline.cli``).
"""

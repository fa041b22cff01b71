"""Common: the words every stage shares, below all of them (it imports no stage).

The one exception tree (``errors``), every reason code (``reasons``), the input's column
schema (``columns``), the config (``settings``, ``input_settings``, ``job_settings``), the
door rate (``rates``), instants as they are written (``instants``), Seam's endpoints
(``endpoints``), names as they are matched (``names``), the idempotency tag (``tags``), the
years a stay may fall in (``stays``), output files (``outputs``, ``csvfiles``) and stopping on
the operator's signal (``interrupts``).
"""

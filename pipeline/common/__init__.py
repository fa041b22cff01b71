"""Common: the words every stage shares, below all of them (it imports no stage).

The one exception tree (``errors``), every reason code (``reasons``), the config and the
input column schema (``settings``, ``input_settings``, ``job_settings``), Seam's endpoints
(``endpoints``), names as they are matched (``names``), the idempotency tag (``tags``), the
years a stay may fall in (``stays``), output files (``outputs``, ``csvfiles``) and stopping on
the operator's signal (``interrupts``).
"""

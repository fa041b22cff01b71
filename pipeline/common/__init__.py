"""Common: the words every stage shares, below all of them (it imports no stage).

The one exception tree (``errors``), every reason code (``reasons``), the config and the
input column schema (``settings``, ``input_settings``, ``job_settings``), Seam's endpoints
(``endpoints``), CSV writing (``csvfiles``) and stopping on the operator's signal
(``interrupts``).
"""

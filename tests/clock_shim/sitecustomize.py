"""Started by every Python process a test starts (``tests/clock.py`` puts this folder on
``PYTHONPATH``): the wall clock moves by the session's offset, so the subprocess agrees with
the test that started it about what time it is."""

import os
import time

_offset = os.environ.get("ORACODE_TESTS_CLOCK_OFFSET")
if _offset:
    try:
        import time_machine
    except ImportError:  # a Python without the test dependencies: its own clock
        pass
    else:
        time_machine.travel(time.time() + float(_offset), tick=True).start()
        time.time()  # the traveller ticks from its first reading: make that now

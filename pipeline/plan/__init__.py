"""Plan: each reservation row becomes a planned code, or a row rejected or skipped with a reason.

Takes the rows ``read`` gave and the ``catalog``'s doors and user levels; gives one plan row per
input row (``planner.PLAN_COLUMNS``): door, user level, lock-local window, idempotency tag and
name, outcome ``planned``, ``rejected`` or ``skipped``. Which module decides what:
    planner   the order of the steps, the door, duplicates, the rules, the outcome
    naming    the idempotency tag, and the code name that carries it
    stays     how check_in/check_out text is read (dates, times, offsets)
    levels    which user level a row gets
    windows   the lock-local window of a row's dates at its level's times
    reasons   every reason code, and the one way a row is given one
"""

"""Plan: each reservation row becomes a planned code, or a row rejected or skipped with a reason.

Takes the rows ``read`` gave and the ``catalog``'s doors and user levels; gives one plan row per
input row, each followed by its stay's rows on the doors ``[doors.also]`` adds
(``planner.PLAN_COLUMNS``): door, user level, lock-local window, idempotency tag and name,
outcome ``planned``, ``rejected`` or ``skipped``. Which module decides what:
    planner           the order of the steps, the rules, the outcome (each reason
                      from ``common.reasons``)
    doors             which door a row is for (device_id, names, ``[doors.aliases]``)
    duplicates        a reservation's rows on one door: copies and conflicts
    naming            each row's idempotency tag (``common.tags``), and the code name
    stays             how check_in/check_out text is read (dates, times, offsets)
    levels            which user level a row gets
    rounding          how far a booking is from a level, and rounding it to one (Seam's hour)
    level_rejections  why a row gets no level, with the door's levels or the nearest one
    windows           the lock-local window of a row's dates at its level's times
    stay_doors        the other doors a stay needs (``[doors.also]``), planned like any row
"""

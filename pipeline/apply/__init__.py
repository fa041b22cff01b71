"""Apply: the plan's planned rows in, each code created on its door exactly once, results out.

Takes the plan (after the budget), a Seam client and the ledger; gives one result row per plan
row (``created``, ``already_created``, ``rejected``, ``failed``, ``skipped``) and the ledger's
record of every request. What is on a door is looked at by ``catalog.looking``. Which module
decides what:
    run        the run: what is sent, in which order, and each row's result
    settling   what a look, verify or check job finds: adopt, send again, or withdraw
    creator    sending a create and what its answer means for the code
    policy     how long an unknown outcome settles, and when the run gives up
    scheduler  which door's job goes next
    pacing     how fast each door and Seam overall may be sent to, and 429 pauses
    reruns     what a row means when the ledger already has a code for its reservation
    workspace  one writer per Seam workspace on a host: its lock, and the key's workspace
               checked against the ledger's
    duplicates a tag on more than one code of its door: found at every look, said everywhere
    handoff    what the run leaves for the hand-off: each code's guest, the rows without a code
"""

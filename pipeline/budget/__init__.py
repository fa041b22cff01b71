"""Budget: how many codes each door may still take, and which planned rows get them.

Takes the plan, the catalog's doors, the ``[budgets]`` config and the codes each door already
has (a look at the doors, the ledger's); gives the plan with rows past their door's budget
rejected (``budget_exhausted``) and a per-door budget table (``BudgetCheck``). Which module
decides what:
    limits      each door's budget, and the check that gives it to the planned rows
    allocation  which rows a door's remaining budget takes, in allocation order
    usage       which codes count as used on a door, counted once before the allocation and
                again just before a stale door's first create (``BudgetGuard``)
"""

"""The ledger's Seam workspace: the codes it records were made in one workspace, and a key for
another is refused.

A ledger records the workspace of the first key used on it (``/workspaces/get``'s answer).
Its codes, tags and send times are that workspace's: read against another workspace, every
code would look missing and every door empty, and a run would create again what exists.
"""

from __future__ import annotations

from pipeline.common.errors import UsageError
from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.states import timestamp


class Workspace(GroupCommits):
    """The ledger's ``workspace`` table (one row)."""

    async def claim_workspace(self, workspace_id: str) -> None:
        """Record ``workspace_id`` as the ledger's workspace when it has none yet (a new
        ledger, or one made before workspaces were recorded); committed when it returns.
        Raises UsageError (exit 2) when the ledger records another workspace."""

        def change(db: Db) -> str:
            db.execute(
                "INSERT INTO workspace (only_row, workspace_id, recorded_at) VALUES (1, ?, ?)"
                " ON CONFLICT (only_row) DO NOTHING",
                (workspace_id, timestamp()),
            )
            return str(db.execute("SELECT workspace_id FROM workspace").fetchone()[0])

        recorded = await self.write(change)
        if recorded != workspace_id:
            raise UsageError(
                f"ledger {self.path} records the codes of Seam workspace {recorded}, but the API"
                f" key is for workspace {workspace_id}",
                hint="use that workspace's key with this ledger, or another --ledger for this"
                " workspace",
            )

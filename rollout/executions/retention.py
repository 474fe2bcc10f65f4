"""The ledger's answer to retention: which digests executions used recently (`delivery gc` keeps them)."""

from __future__ import annotations

from datetime import datetime

from delivery.paths import default_database_url
from rollout.executions.ledger import Ledger


class LedgerRecentExecutions:
    """`delivery.release.gc.RecentExecutions` over the execution ledger (registered as an entry point)."""

    def __init__(self, url: str | None = None) -> None:
        self._ledger = Ledger(url or default_database_url())

    def digests_used_since(self, since: datetime) -> set[str]:
        """Digests of every execution created at or after `since`."""
        return {execution.record.digest for execution in self._ledger.executions(since=since)}

"""Usage, cost and budgets: what every call cost, where the money goes, and limits that hold.

Each call gives a :class:`UsageRecord` (and each failed attempt one, marked ``kind="attempt"``), priced by
:mod:`polyroute.usage.prices`; the router's :class:`~polyroute.usage.recorder.Recorder` sends them to the sinks
configured under ``usage:`` (in-memory totals, a SQLite ledger, OpenTelemetry, a callback) and checks ``budgets:``.
Only the record and the totals are imported with the router; sinks load when configured.
"""

from polyroute.usage.budgets import BudgetStore, Claim, MemoryBudgetStore
from polyroute.usage.record import UsageRecord

__all__ = ["BudgetStore", "Claim", "MemoryBudgetStore", "UsageRecord"]

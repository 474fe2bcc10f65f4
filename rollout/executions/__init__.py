"""Execution clients: pinned submissions, paired canary runs, the execution ledger, recalls, triggers."""

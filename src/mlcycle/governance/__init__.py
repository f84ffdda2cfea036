"""Governance: approvals for protected environments, the audit trail, and model cards.

- :mod:`~mlcycle.governance.approvals`: ``mlcycle approve|revoke``; :func:`require_approval` guards serving;
- :mod:`~mlcycle.governance.audit`: append-only ``mlcycle.audit.*`` events on each model version;
- :mod:`~mlcycle.governance.cards`: a Markdown/HTML card per version from what the registry recorded.
"""

"""Audits and forensics: the whole ML environment at a moment, and what changed since.

Layout: ``steps`` (the checks an audit runs, one pluggable step each), ``snapshot`` (the
content-addressed snapshot document), ``record`` (run the steps, take the snapshot, commit it to
the ledger), ``diff`` (two snapshots, and who changed what), ``history`` (every ledger entry
that touched a file, following renames, with inclusion proofs), ``bundle`` (evidence bundles,
verified offline), ``watch`` (record changes as they happen), ``schedule`` (examples for
running audits from systemd, cron and CI).
"""

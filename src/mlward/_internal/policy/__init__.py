"""Policies and gates: one input document built from every check, rules over it written in
CEL or Rego, packs of rules, and the verdict.

Layout: ``document`` (the input document and its schema), ``model`` (policy files, packs,
validation with line numbers), ``engine`` with ``cel`` and ``rego`` (conditions), ``evaluate``
(violations, waivers, the verdict), ``gate`` (running the checks, provenance of each model),
``render`` (the gate's outputs), ``record`` (the gate in the ledger). Alerts live beside it,
in ``mlward._internal.alerts``.
"""

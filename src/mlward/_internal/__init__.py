"""mlward's machinery: not a public API (names and signatures change without notice).

The public API is what :mod:`mlward` exports, plus :mod:`mlward.findings`,
:mod:`mlward.settings`, :mod:`mlward.errors`, :mod:`mlward.rules`, :mod:`mlward.executors`,
:mod:`mlward.formats`, :mod:`mlward.plugins` and :func:`mlward.cli.main`.
"""

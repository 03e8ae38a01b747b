"""Secrets and personal data in text: the detectors, the reporting helpers, the text scanner.

``detect`` (secret detectors), ``pii`` (personal data), ``report`` (hits to findings,
allowlists and baselines), ``text`` (the scanner). This package module stays empty so
that importing the scanner costs nothing until a file needs the detectors.

The notebook and Python scanners call :func:`report_secrets` and :func:`report_pii` on each
piece of text they extract; :class:`~mlward._internal.scanners.secrets.text.TextScanner` gives every
other small text file (configs, ``.env``, YAML, JSON, shell, Markdown) the secrets pass.

A secret is never reported whole: evidence is a short prefix and a hash
(:func:`~mlward._internal.scanners.secrets.detect.mask`). Reviewed secrets are silenced inline
(``# mlward: allow``) or by listing their fingerprint in ``.mlward/secrets-baseline.json``
in the file's folder or any folder above it.
"""


"""Tabular data versions: read them (:mod:`.tables`), compare them (:mod:`.diff`), and turn
the comparison into findings (:mod:`.report`) for ``mlward data diff``, ``lineage verify``
and the audit."""

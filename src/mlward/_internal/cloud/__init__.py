"""Cloud storage and ML infrastructure: live, read-only checks of AWS, Google Cloud and Azure
accounts (``mlward cloud``), the links from a project's ML assets to the buckets that hold
them, and infrastructure-as-code checks (:mod:`mlward._internal.cloud.iac`, run by
``mlward scan``).

Nothing here writes to a cloud account: every call is a read (list, get, describe, a ranged
GET of an object's first bytes). This package imports no cloud SDK at import time; each
provider module loads its SDK when it runs.
"""

"""The dashboard (``mlward serve``): a Starlette application that reads the inventory and
the ledger and never runs a scanner. ``app`` holds the routes and the server's own security,
``ledgerview`` the ledger pages, ``svg`` the drawings' geometry, ``openapi`` the API's
description; ``templates/`` and ``static/`` are shipped in the package (no CDN)."""

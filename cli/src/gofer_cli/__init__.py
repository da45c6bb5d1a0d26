"""gofer: the command line of Gofer. It speaks only HTTP and websockets to the Gofer API (docs/cli.md).

Layout: ``config`` (settings and their sources), ``client`` and ``streams`` (the API over HTTP and websockets, raw
JSON only), ``runs`` and ``up`` (what commands do, as functions of raw data), ``humanize``, ``views`` and ``output``
(presentation: humanised, plain or JSON), ``commands`` (the Click tree), ``app`` (entry point and exit codes).
"""

__version__ = "0.9.1"

"""The stores of ``@vix_cached``, each a ``vix_ttl._cache.api.Store``: ``mapping`` (in-process),
``aiocache`` and ``redis`` (at the edge: each imports its extra, so the core never imports
them; ``vix_ttl.decorator`` finds them by name, before the ``vix_ttl.stores`` entry points)."""

"""The stores of ``@vix_cached``, each a ``vix_ttl._cache.api.Store``: ``mapping`` (in-process,
built in), ``aiocache`` and ``redis`` (at the edge, found through the ``vix_ttl.stores`` entry
points, so the core never imports them)."""

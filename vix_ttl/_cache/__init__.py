"""The call of a ``@vix_cached`` function: the store contract (``api``), the options
(``options``), the one algorithm (``engine``) and the rules of shared stores (``shared``)."""

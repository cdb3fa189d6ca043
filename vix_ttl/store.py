"""What a store of ``@vix_cached`` implements: the contract for a store of your own.

A store is a ``Store``; an adapter (``StoreAdapter``) makes one from the object a user
passes as ``cache=``, for one decorated ``Function``, and is registered under the entry
point group ``vix_ttl.stores``. A store only reads, writes, drops and clears entries
(``Found``, ``Written``), judging freshness with ``fresh``, logging its faults once per
burst (``FaultLog``) and failing open; the engine decides, computes and counts
(``Outcome``). ``MappingStore`` is the in-process store, ``SharedStore`` the one of every
cache shared between processes, over a ``Backend`` of raw commands. Run
``vix_ttl.testing.StoreConformance`` against yours.
"""

from vix_ttl._budget import Budget, Commands
from vix_ttl._cache.api import Found, Outcome, Store, StoreAdapter, Written, fresh
from vix_ttl._cache.options import Function, Options
from vix_ttl._cache.shared import Backend, Payload, SharedStore
from vix_ttl._faults import FaultLog
from vix_ttl._keys import key_prefix, wire_key
from vix_ttl._lease import LeaseStore
from vix_ttl._stores.mapping import MappingStore

__all__ = [
    "Backend",
    "Budget",
    "Commands",
    "FaultLog",
    "Found",
    "Function",
    "LeaseStore",
    "MappingStore",
    "Options",
    "Outcome",
    "Payload",
    "SharedStore",
    "Store",
    "StoreAdapter",
    "Written",
    "fresh",
    "key_prefix",
    "wire_key",
]

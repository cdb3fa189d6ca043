"""vix_ttl: cache TTLs that adapt to how volatile the data is right now."""

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import CachedFunction, CacheInfo, vix_cached
from vix_ttl.detector import VolatilityDetector
from vix_ttl.mode import Mode, Thresholds, Transition
from vix_ttl.policy import BASE, BYPASS, Decision, Learned, Rule, Strategy, TTLPolicy
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = [
    "BASE",
    "BYPASS",
    "CacheInfo",
    "CachedFunction",
    "Decision",
    "Learned",
    "Mode",
    "Rule",
    "Strategy",
    "TTLPolicy",
    "Thresholds",
    "Transition",
    "VIXCircuitBreaker",
    "VixStatus",
    "VolatilityDetector",
    "get_breaker",
    "vix_cached",
]
# The one place the version is written: pyproject.toml reads it (dynamic version).
__version__ = "0.2.0"

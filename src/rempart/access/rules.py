"""The numbers of the access protocol: caps, windows and approval thresholds.

They come from the deployment's configuration (passed in, never read here)
and are checked when built: a threshold below one, or a window that is not
positive, would open the door, so it is refused (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from rempart.errors import ConfigurationError

if TYPE_CHECKING:
    from rempart.access.model import Scope

__all__ = ["AccessRules"]


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Caps and thresholds for access requests, grants and break-glass.

    * ``max_duration``: longest grant a request may ask for.
    * ``decision_timeout``: a request not decided within it lapses.
    * ``max_start_delay``: how far ahead a requested start time may be.
    * ``first_use_window``: how long an approved first-use grant waits for its
      first use before it expires unused.
    * ``break_glass_max_duration``: longest break-glass grant.
    * ``break_glass_review_window``: a break-glass grant must be reviewed by a
      custodian approver within this time after it opened.
    * approvals needed: ``approvals_single_subject`` for a request naming one
      subject, ``approvals_bulk`` for several subjects or a count limit,
      ``approvals_sensitive`` when a collection is in ``sensitive_collections``;
      the highest that applies wins.
    * ``clock_skew``: how far in the future a signed time may be.
    """

    max_duration: timedelta = timedelta(hours=8)
    decision_timeout: timedelta = timedelta(hours=24)
    max_start_delay: timedelta = timedelta(days=14)
    first_use_window: timedelta = timedelta(hours=72)
    break_glass_max_duration: timedelta = timedelta(hours=1)
    break_glass_review_window: timedelta = timedelta(hours=24)
    approvals_single_subject: int = 1
    approvals_bulk: int = 2
    approvals_sensitive: int = 2
    sensitive_collections: frozenset[str] = field(
        default_factory=lambda: frozenset({"location", "messages"})
    )
    max_subjects: int = 1000
    max_bulk_limit: int = 100_000
    clock_skew: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        for name in (
            "max_duration",
            "decision_timeout",
            "first_use_window",
            "break_glass_max_duration",
            "break_glass_review_window",
        ):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ConfigurationError(f"access.{name} must be a positive duration", path=f"access.{name}")
        for name in ("max_start_delay", "clock_skew"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ConfigurationError(f"access.{name} must not be negative", path=f"access.{name}")
        for name in (
            "approvals_single_subject",
            "approvals_bulk",
            "approvals_sensitive",
            "max_subjects",
            "max_bulk_limit",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigurationError(
                    f"access.{name} must be a whole number of at least 1 (0 would open the door)",
                    path=f"access.{name}",
                )
        if not isinstance(self.sensitive_collections, frozenset):
            raise ConfigurationError(
                "access.sensitive_collections must be a set of collection names",
                path="access.sensitive_collections",
            )

    def required_approvals(self, scope: Scope) -> int:
        """How many counted custodian approvals a request with this scope needs."""
        needed = self.approvals_bulk if scope.is_bulk else self.approvals_single_subject
        if scope.collections & self.sensitive_collections:
            needed = max(needed, self.approvals_sensitive)
        return needed

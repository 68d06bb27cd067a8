"""The policy set in force, kept in the control database, every change on the record.

:meth:`PolicyStore.activate` is the one way a policy set goes into force
(governance calls it once a board proposal passes): the text is validated
against the schema first; an invalid set is refused with Cedar's message and
the previous set stays in force. A valid set is stored and a
``policy.activated`` event (with the full text, so auditors can replay
decisions) is recorded in the same step; if the log cannot record, nothing
changes (:class:`~rempart.errors.AuditUnavailable`).

Crash safety: the row is written and the event recorded inside one database
transaction, committed only after the log acknowledged the event. A crash
before the commit leaves the old set in force, with possibly an event for a
set that never went into force (harmless: the next ``policy.activated``
names its predecessor, so an auditor sees which sets really ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rempart.clock import Clock, format_time, parse_time
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound
from rempart.events import Event, EventRecorder
from rempart.policy.engine import PolicyEngine
from rempart.policy.policy_set import CompiledPolicies, PolicySchema

__all__ = ["PolicyActivation", "PolicyStore"]

SCHEMA_STEPS = [
    (
        "policy-0001",
        """
        CREATE TABLE policy_sets (
            seq {serial},
            version TEXT NOT NULL,
            text TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            activated_at TEXT NOT NULL
        )
        """,
    ),
]

_MAX_NOTE = 1000


@dataclass(frozen=True, slots=True)
class PolicyActivation:
    """One activation of a policy set: which text, by whom, why, when."""

    seq: int
    version: str
    text: str
    actor: str
    reason: str
    activated_at: datetime


def _check_words(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > _MAX_NOTE:
        raise InvalidInput(f"{what} is longer than {_MAX_NOTE} characters")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in value):
        raise InvalidInput(f"{what} contains a control character")
    return value


class PolicyStore:
    """Stores, activates and restores policy sets; keeps ``engine`` on the set in force.

    On construction the latest activated set (if any) is compiled and put into
    the engine, so a restarted process decides with the set that was in force.
    """

    def __init__(
        self,
        database: Database,
        *,
        recorder: EventRecorder,
        clock: Clock,
        engine: PolicyEngine,
        schema: PolicySchema | None = None,
    ) -> None:
        self.db = database
        self.recorder = recorder
        self.clock = clock
        self.engine = engine
        self.schema = schema or engine.policies.schema
        database.migrate(SCHEMA_STEPS)
        latest = self.latest()
        if latest is not None:
            engine.install(CompiledPolicies.compile(latest.text, self.schema))

    def latest(self) -> PolicyActivation | None:
        """The activation in force, or None if no set was ever activated here."""
        row = self.db.query_one(
            "SELECT seq, version, text, actor, reason, activated_at FROM policy_sets "
            "ORDER BY seq DESC LIMIT 1"
        )
        return None if row is None else _activation(row)

    def history(self) -> list[PolicyActivation]:
        """Every activation, oldest first."""
        rows = self.db.query_all(
            "SELECT seq, version, text, actor, reason, activated_at FROM policy_sets ORDER BY seq"
        )
        return [_activation(r) for r in rows]

    def get(self, version: str) -> PolicyActivation:
        row = self.db.query_one(
            "SELECT seq, version, text, actor, reason, activated_at FROM policy_sets "
            "WHERE version = ? ORDER BY seq DESC LIMIT 1",
            (version,),
        )
        if row is None:
            raise NotFound(f"no policy set with version {version!r} was ever activated")
        return _activation(row)

    def activate(self, text: str, *, reason: str, actor: str) -> PolicyActivation:
        """Validate ``text``, record ``policy.activated``, store it and put it in force.

        Raises InvalidInput (Cedar's message) for an invalid set and
        AuditUnavailable if the log cannot record; in both cases the previous
        set stays in force.
        """
        _check_words(reason, "reason")
        _check_words(actor, "actor")
        compiled = CompiledPolicies.compile(text, self.schema)
        now = self.clock.now()
        previous = self.engine.policies.version
        event = Event(
            "policy.activated",
            now,
            {
                "version": compiled.version,
                "previous_version": previous,
                "schema_digest": self.schema.digest,
                "actor": actor,
                "reason": reason,
                "policies": list(compiled.ids()),
                "text": compiled.text,
            },
        )
        event.encode()  # refuse an entry too large for the log before touching anything
        with self.db.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO policy_sets (version, text, actor, reason, activated_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING seq",
                (compiled.version, compiled.text, actor, reason, format_time(now)),
            )
            row = cursor.fetchone()
            self.recorder.record(event)  # raises AuditUnavailable: the transaction rolls back
        self.engine.install(compiled)
        seq = int(row[0]) if row else 0
        return PolicyActivation(seq, compiled.version, compiled.text, actor, reason, now)

    def refresh(self) -> bool:
        """Put into force a set another process activated since; True if the set changed.

        API nodes sharing one control database call this periodically (or on a
        notification) so every node decides with the set in force.
        """
        latest = self.latest()
        if latest is None or latest.version == self.engine.policies.version:
            return False
        self.engine.install(CompiledPolicies.compile(latest.text, self.schema))
        return True

    def ensure_active(self, default_text: str, *, actor: str) -> PolicyActivation:
        """Put the set in force into the engine, activating ``default_text`` if none ever was."""
        latest = self.latest()
        if latest is None:
            return self.activate(default_text, reason="initial policy set", actor=actor)
        if latest.version != self.engine.policies.version:
            self.engine.install(CompiledPolicies.compile(latest.text, self.schema))
        return latest


def _activation(row: tuple[object, ...]) -> PolicyActivation:
    seq, version, text, actor, reason, activated_at = row
    return PolicyActivation(
        int(str(seq)), str(version), str(text), str(actor), str(reason), parse_time(str(activated_at))
    )

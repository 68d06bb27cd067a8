"""Principals: the people and services that act, with the attributes policies look at.

A principal has an id (``operator:alice``), a display name, an org
(``operator``, ``parent``, ``custodian``, ``board``, ``auditor``), a location
(ISO 3166-1 alpha-2), a screening status, roles, the purposes a service is
registered for, an optional Ed25519 verifier key (C2SP note ``vkey``) for
those who sign approvals, and a disabled flag. They live in the control
database; every change is recorded in the log (``access.principal.*``) before
it is committed, and refused if the log cannot record it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from rempart.clock import Clock, format_time
from rempart.db import Database
from rempart.errors import Conflict, InvalidInput, NotFound
from rempart.events import Event, EventRecorder
from rempart.policy.model import PrincipalEntity
from rempart.store.catalog import PURPOSES
from rempart.tlog.note import Verifier

__all__ = [
    "ORGS",
    "SCREENING_STATUSES",
    "Principal",
    "PrincipalStore",
]

ORGS: Final = ("operator", "parent", "custodian", "board", "auditor")
SCREENING_STATUSES: Final = ("cleared", "pending", "none")

_ID = re.compile(r"[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_ROLES = 32
_MAX_NAME = 200

SCHEMA_STEPS = [
    (
        "access-0001-principals",
        """
        CREATE TABLE access_principals (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            org TEXT NOT NULL,
            location TEXT NOT NULL,
            screening TEXT NOT NULL,
            roles TEXT NOT NULL,
            purposes TEXT NOT NULL,
            vkey TEXT,
            disabled INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX access_principals_org ON access_principals (org)
        """,
    ),
]


def check_principal_id(value: object) -> str:
    """A principal id is ``kind:name`` (e.g. ``operator:alice``, ``custodian:carol``)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(
            f"principal id {value!r} is not of the form kind:name (lowercase kind, then letters, "
            "digits, '.', '_', '@' or '-'; at most 160 characters)"
        )
    return value


def _words(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput(f"{what} contains a control character")
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """A person or a service, as the control database knows them. Validated when built."""

    id: str
    display_name: str
    org: str
    location: str
    screening: str
    roles: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    vkey: str | None = None
    disabled: bool = False

    def __post_init__(self) -> None:
        check_principal_id(self.id)
        _words(self.display_name, "display name", _MAX_NAME)
        if self.org not in ORGS:
            raise InvalidInput(f"org {self.org!r} is not one of: {', '.join(ORGS)}")
        if not isinstance(self.location, str) or not _COUNTRY.fullmatch(self.location):
            raise InvalidInput(
                f"location {self.location!r} is not an ISO 3166-1 alpha-2 country code (e.g. US)"
            )
        if self.screening not in SCREENING_STATUSES:
            raise InvalidInput(
                f"screening {self.screening!r} is not one of: {', '.join(SCREENING_STATUSES)}"
            )
        if not isinstance(self.roles, frozenset):
            raise InvalidInput("roles must be a frozenset of role names")
        if len(self.roles) > _MAX_ROLES:
            raise InvalidInput(f"a principal has at most {_MAX_ROLES} roles")
        for role in self.roles:
            if not isinstance(role, str) or not _ROLE.fullmatch(role):
                raise InvalidInput(f"role {role!r} is not a lowercase word (a-z, 0-9, _)")
        if not isinstance(self.purposes, frozenset):
            raise InvalidInput("purposes must be a frozenset of purpose codes")
        for purpose in self.purposes:
            if purpose not in PURPOSES:
                raise InvalidInput(
                    f"purpose {purpose!r} is not a purpose code; use one of: {', '.join(PURPOSES)}"
                )
        if self.vkey is not None:
            if not isinstance(self.vkey, str):
                raise InvalidInput("vkey must be a C2SP verifier key string name+hexid+base64")
            Verifier.parse(self.vkey)
        if type(self.disabled) is not bool:
            raise InvalidInput("disabled must be true or false")

    @classmethod
    def build(
        cls,
        *,
        id: str,
        display_name: str,
        org: str,
        location: str,
        screening: str,
        roles: Iterable[str] = (),
        purposes: Iterable[str] = (),
        vkey: str | None = None,
        disabled: bool = False,
    ) -> Principal:
        """Build from any iterables of roles and purposes (a bare string is refused)."""
        return cls(
            id,
            display_name,
            org,
            location,
            screening,
            _string_set(roles, "roles"),
            _string_set(purposes, "purposes"),
            vkey,
            disabled,
        )

    def verifier(self) -> Verifier | None:
        """The principal's note verifier, if they registered a key."""
        return None if self.vkey is None else Verifier.parse(self.vkey)

    def entity(self) -> PrincipalEntity:
        """The Cedar facts of this principal (built once per distinct principal)."""
        return _entity(self.id, self.org, self.location, self.screening, self.roles, self.purposes)

    def facts(self) -> dict[str, Any]:
        """What the log records about a principal: everything but the display name."""
        return {
            "id": self.id,
            "org": self.org,
            "location": self.location,
            "screening": self.screening,
            "roles": sorted(self.roles),
            "purposes": sorted(self.purposes),
            "vkey": self.vkey,
            "disabled": self.disabled,
        }


def _string_set(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str | bytes):
        raise InvalidInput(f"{what} must be a list of strings, not one string")
    try:
        return frozenset(values)
    except TypeError as exc:
        raise InvalidInput(f"{what} must be a list of strings: {exc}") from exc


_UPDATABLE: Final = frozenset(
    {"display_name", "location", "screening", "roles", "purposes", "vkey", "disabled"}
)
_COLUMNS = "id, display_name, org, location, screening, roles, purposes, vkey, disabled"


@functools.lru_cache(maxsize=4096)
def _entity(
    ident: str, org: str, location: str, screening: str, roles: frozenset[str], purposes: frozenset[str]
) -> PrincipalEntity:
    return PrincipalEntity(ident, org, location, screening, roles, purposes)


@functools.lru_cache(maxsize=4096)
def _from_row(row: tuple[Any, ...]) -> Principal:
    """A principal from its stored columns; remembered per exact row (every request authenticates)."""
    ident, name, org, location, screening, roles, purposes, vkey, disabled = row
    return Principal(
        str(ident),
        str(name),
        str(org),
        str(location),
        str(screening),
        frozenset(json.loads(roles)),
        frozenset(json.loads(purposes)),
        None if vkey is None else str(vkey),
        bool(disabled),
    )


class PrincipalStore:
    """Create, read, update, disable and delete principals in the control database.

    Each change is recorded (``access.principal.created``, ``.updated``,
    ``.deleted``) inside the database transaction that makes it, so a change
    the log could not record is never committed.
    """

    def __init__(self, database: Database, *, recorder: EventRecorder, clock: Clock) -> None:
        self.db = database
        self.recorder = recorder
        self.clock = clock
        database.migrate(SCHEMA_STEPS)

    def create(self, principal: Principal, *, actor: str) -> Principal:
        """Add a principal; Conflict if the id is taken."""
        if not isinstance(principal, Principal):
            raise InvalidInput("create takes a Principal (use Principal.build)")
        _words(actor, "actor", _MAX_NAME)
        now = self.clock.now()
        with self.db.transaction() as tx:
            cursor = tx.execute(
                f"INSERT INTO access_principals ({_COLUMNS}, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (*_row(principal), format_time(now), format_time(now)),
            )
            if cursor.rowcount != 1:
                raise Conflict(f"principal {principal.id} already exists", principal=principal.id)
            self.recorder.record(
                Event(
                    "access.principal.created",
                    now,
                    {"principal": principal.facts(), "actor": actor},
                )
            )
        return principal

    def find(self, principal_id: str) -> Principal | None:
        row = self.db.query_one(
            f"SELECT {_COLUMNS} FROM access_principals WHERE id = ?", (principal_id,)
        )
        return None if row is None else _from_row(row)

    def get(self, principal_id: str) -> Principal:
        """The principal with this id; NotFound otherwise."""
        found = self.find(principal_id)
        if found is None:
            raise NotFound(f"no principal {principal_id!r}", principal=principal_id)
        return found

    def list(self, *, org: str | None = None, include_disabled: bool = True) -> list[Principal]:
        """Principals ordered by id, optionally of one org and only enabled ones."""
        sql = f"SELECT {_COLUMNS} FROM access_principals"
        clauses: list[str] = []
        params: list[object] = []
        if org is not None:
            if org not in ORGS:
                raise InvalidInput(f"org {org!r} is not one of: {', '.join(ORGS)}")
            clauses.append("org = ?")
            params.append(org)
        if not include_disabled:
            clauses.append("disabled = 0")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [_from_row(r) for r in self.db.query_all(sql + " ORDER BY id", params)]

    def update(self, principal_id: str, *, actor: str, **changes: Any) -> Principal:
        """Change some attributes (not id or org); records what changed. Returns the new value."""
        _words(actor, "actor", _MAX_NAME)
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise InvalidInput(
                f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(_UPDATABLE))}"
            )
        for key in ("roles", "purposes"):
            if key in changes:
                changes[key] = _string_set(changes[key], key)
        now = self.clock.now()
        with self.db.transaction() as tx:
            row = tx.execute(
                f"SELECT {_COLUMNS} FROM access_principals WHERE id = ?", (principal_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no principal {principal_id!r}", principal=principal_id)
            old = _from_row(row)
            new = replace(old, **changes)
            before, after = old.facts(), new.facts()
            changed = {k: after[k] for k in after if after[k] != before[k]}
            if new.display_name != old.display_name:
                changed["display_name_changed"] = True
            if not changed:
                return old
            tx.execute(
                "UPDATE access_principals SET location = ?, screening = ?, roles = ?, "
                "purposes = ?, vkey = ?, disabled = ?, updated_at = ?, display_name = ? WHERE id = ?",
                (*_row(new)[3:], format_time(now), new.display_name, principal_id),
            )
            self.recorder.record(
                Event(
                    "access.principal.updated",
                    now,
                    {"principal": principal_id, "changes": changed, "actor": actor},
                )
            )
        return new

    def disable(self, principal_id: str, *, actor: str) -> Principal:
        """Disable a principal: their tokens stop working and they take no part in decisions."""
        return self.update(principal_id, actor=actor, disabled=True)

    def delete(self, principal_id: str, *, actor: str) -> None:
        """Remove a principal nothing refers to; one with tokens or requests must be disabled instead."""
        _words(actor, "actor", _MAX_NAME)
        now = self.clock.now()
        try:
            with self.db.transaction() as tx:
                cursor = tx.execute("DELETE FROM access_principals WHERE id = ?", (principal_id,))
                if cursor.rowcount == 0:
                    raise NotFound(f"no principal {principal_id!r}", principal=principal_id)
                self.recorder.record(
                    Event(
                        "access.principal.deleted",
                        now,
                        {"principal": principal_id, "actor": actor},
                    )
                )
        except Conflict as exc:
            raise Conflict(
                f"principal {principal_id} has tokens or access requests; disable it instead",
                principal=principal_id,
            ) from exc


def _row(p: Principal) -> tuple[object, ...]:
    return (
        p.id,
        p.display_name,
        p.org,
        p.location,
        p.screening,
        json.dumps(sorted(p.roles)),
        json.dumps(sorted(p.purposes)),
        p.vkey,
        int(p.disabled),
    )


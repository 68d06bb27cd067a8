"""The deployment's TOML file → frozen, validated values.

Every mistake raises :class:`~rempart.errors.ConfigurationError` whose message
starts with the key path (``regions.us.store: …``) and says what was expected;
several mistakes are reported together, one per line. Relative paths (SQLite
files, key files, the catalog file) resolve against the config file's folder.

>>> import tempfile, pathlib
>>> data = pathlib.Path(tempfile.mkdtemp())
>>> cfg = default_config(data)
>>> sorted(cfg.regions), cfg.regions["us"].relocation_to
(['row', 'us'], ('row',))
>>> cfg.regions["us"].store == f"sqlite:///{data}/regions/us.db"
True

The file (the default, as :func:`default_config_text` writes it)::

    [deployment]
    name = "rempart-embedded"
    [control]
    database = "sqlite:///control.db"
    [log]
    database = "sqlite:///log.db"
    origin = "rempart.local/log"
    key_file = "keys/log.key"
    checkpoint_interval = 1.0
    [keyring]
    path = "keys/keyring.json"
    [regions.us]
    store = "sqlite:///regions/us.db"
    kek = "us"
    relocation_to = ["row"]
    [regions.us.egress]
    destinations = ["parent-analytics"]
    budgets = { business_metrics = 100000 }
    ...

Optional tables, validated when present: ``[catalog]`` (``path = "…"`` or
inline ``[catalog.collections.…]``; default: the shipped catalog), ``[access]``,
``[policy]``, ``[server]``, ``[[witnesses]]``, ``[governance]``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from rempart.access.rules import AccessRules
from rempart.db import parse_database_url
from rempart.errors import ConfigurationError, RempartError
from rempart.store.catalog import PURPOSES, Catalog, default_catalog, load_catalog, parse_catalog
from rempart.store.records import DESTINATION_NAME, REGION_NAME
from rempart.tlog.note import Verifier

__all__ = [
    "Config",
    "EgressRules",
    "GovernanceSettings",
    "LogSettings",
    "PolicySettings",
    "RegionConfig",
    "ServerSettings",
    "WitnessSettings",
    "default_config",
    "default_config_text",
    "load_config",
    "parse_config",
    "parse_duration",
]

_DURATION = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class LogSettings:
    database: str
    origin: str
    key_file: Path
    checkpoint_interval: float = 1.0
    gather_window: float = 0.005


@dataclass(frozen=True, slots=True)
class EgressRules:
    """What may leave a region: to which destinations, and per purpose how many excepted records a day."""

    destinations: tuple[str, ...] = ()
    budgets: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegionConfig:
    name: str
    store: str
    kek: str
    """The custodian's key ring that wraps this region's subject keys."""
    egress: EgressRules = field(default_factory=EgressRules)
    relocation_to: tuple[str, ...] = ()
    """Regions this region's subjects may be relocated to (none: relocation refused)."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The Cedar engine's memo: how many decisions it keeps, and whether it re-validates requests."""

    cache_size: int = 65536
    validate_requests: bool = True


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    token_lifetime: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    name: str
    vkey: str
    url: str


@dataclass(frozen=True, slots=True)
class GovernanceSettings:
    proposal_lifetime: timedelta = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Config:
    """A whole deployment: databases, log, regions, catalog, keys, and the optional rooms' settings."""

    name: str
    control_database: str
    log: LogSettings
    regions: Mapping[str, RegionConfig]
    catalog: Catalog
    keyring: Path
    access: AccessRules = field(default_factory=AccessRules)
    policy: PolicySettings = field(default_factory=PolicySettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    witnesses: tuple[WitnessSettings, ...] = ()
    governance: GovernanceSettings = field(default_factory=GovernanceSettings)
    source: Path | None = None
    """The file this configuration was read from, if any."""


def parse_duration(value: object) -> timedelta:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"7d"`` or a positive integer of seconds; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f'expected a duration such as "90s", "15m", "4h" or "7d", got {value!r}')


class _Errors:
    """Collects (key path, message) pairs so that one run reports every mistake."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigurationError(
                "\n".join(f"{p}: {m}" for p, m in self.items),
                path=self.items[0][0],
                errors=[{"path": p, "message": m} for p, m in self.items],
            )


class _Reader:
    """Typed, path-aware reads from a TOML table; wrong values become errors, not exceptions."""

    def __init__(self, errors: _Errors, base: Path) -> None:
        self.errors = errors
        self.base = base

    def table(self, parent: Mapping[str, Any], key: str, path: str, *, required: bool) -> Mapping[str, Any]:
        value = parent.get(key)
        if value is None:
            if required:
                self.errors.add(path, "missing table")
            return {}
        if not isinstance(value, Mapping):
            self.errors.add(path, f"expected a table, got {type(value).__name__}")
            return {}
        return value

    def known(self, table: Mapping[str, Any], path: str, keys: set[str]) -> None:
        for key in sorted(set(table) - keys):
            self.errors.add(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(keys))})")

    def string(self, table: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if value is None:
            self.errors.add(f"{path}.{key}", "missing: expected a string")
            return ""
        if not isinstance(value, str) or not value:
            self.errors.add(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
            return ""
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.errors.add(f"{path}.{key}", f"expected an integer from {low} to {high}, got {value!r}")
            return default
        return value

    def number(self, table: Mapping[str, Any], key: str, path: str, default: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
            self.errors.add(
                f"{path}.{key}", f"expected a number of seconds above 0 and at most 3600, got {value!r}"
            )
            return default
        return float(value)

    def duration(self, table: Mapping[str, Any], key: str, path: str, default: timedelta) -> timedelta:
        if key not in table:
            return default
        try:
            return parse_duration(table[key])
        except ValueError as exc:
            self.errors.add(f"{path}.{key}", str(exc))
            return default

    def strings(
        self, table: Mapping[str, Any], key: str, path: str, default: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.errors.add(f"{path}.{key}", "expected a list of strings")
            return default
        if len(set(value)) != len(value):
            self.errors.add(f"{path}.{key}", "lists a value twice")
        return tuple(value)

    def path(self, table: Mapping[str, Any], key: str, path: str, default: str | None = None) -> Path:
        text = self.string(table, key, path, default)
        resolved = Path(text)
        return resolved if resolved.is_absolute() else self.base / resolved

    def database(self, table: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        url = self.string(table, key, path, default)
        if not url:
            return ""
        try:
            dialect, target = parse_database_url(url)
        except ConfigurationError as exc:
            reason = " ".join(exc.message.split())
            self.errors.add(f"{path}.{key}", f"{reason} (expected sqlite:///PATH or postgresql://…)")
            return ""
        if dialect == "sqlite" and target != ":memory:" and not Path(target).is_absolute():
            return f"sqlite:///{self.base / target}"
        return url


def _regions(raw: Mapping[str, Any], r: _Reader) -> dict[str, RegionConfig]:
    errors = r.errors
    table = r.table(raw, "regions", "regions", required=True)
    if not table and not errors.items:
        errors.add("regions", "expected at least one region ([regions.<name>])")
    names = set(table)
    regions: dict[str, RegionConfig] = {}
    for name, value in table.items():
        path = f"regions.{name}"
        if not REGION_NAME.match(name):
            errors.add(
                path, "region names are a lowercase letter, then up to 31 of a-z 0-9 _ - (e.g. us, eu_west)"
            )
            continue
        if not isinstance(value, Mapping):
            errors.add(path, f"expected a table, got {type(value).__name__}")
            continue
        r.known(value, path, {"store", "kek", "egress", "relocation_to"})
        store = r.database(value, "store", path)
        kek = r.string(value, "kek", path, name)
        if kek and not REGION_NAME.match(kek.replace("-", "_")):
            errors.add(
                f"{path}.kek", f"expected a key ring name (lower-case letters, digits, - or _), got {kek!r}"
            )
        relocation_to = r.strings(value, "relocation_to", path)
        for i, target in enumerate(relocation_to):
            if target not in names:
                errors.add(
                    f"{path}.relocation_to[{i}]",
                    f"unknown region {target!r} (defined: {', '.join(sorted(names))})",
                )
            elif target == name:
                errors.add(f"{path}.relocation_to[{i}]", "a region cannot relocate subjects to itself")
        egress_raw = r.table(value, "egress", f"{path}.egress", required=False)
        r.known(egress_raw, f"{path}.egress", {"destinations", "budgets"})
        destinations = r.strings(egress_raw, "destinations", f"{path}.egress")
        for i, dest in enumerate(destinations):
            if not DESTINATION_NAME.match(dest):
                errors.add(
                    f"{path}.egress.destinations[{i}]",
                    f"expected a destination name (lower-case letters, digits, . _ : / -), got {dest!r}",
                )
        budgets: dict[str, int] = {}
        budgets_raw = r.table(egress_raw, "budgets", f"{path}.egress.budgets", required=False)
        for purpose, limit in budgets_raw.items():
            bpath = f"{path}.egress.budgets.{purpose}"
            if purpose not in PURPOSES:
                errors.add(bpath, f"unknown purpose (expected one of: {', '.join(PURPOSES)})")
            elif not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                errors.add(bpath, f"expected a number of records per day (an integer ≥ 0), got {limit!r}")
            else:
                budgets[purpose] = limit
        regions[name] = RegionConfig(name, store, kek, EgressRules(destinations, budgets), relocation_to)
    rings: dict[str, str] = {}
    stores: dict[str, str] = {}
    for name, region in regions.items():
        if region.kek and region.kek in rings:
            errors.add(
                f"regions.{name}.kek",
                f"key ring {region.kek!r} is already region {rings[region.kek]!r}'s: "
                "each region has its own key",
            )
        rings.setdefault(region.kek, name)
        if region.store and region.store in stores:
            errors.add(
                f"regions.{name}.store",
                f"the same database as region {stores[region.store]!r}: each region has its own",
            )
        stores.setdefault(region.store, name)
    return regions


def _access(raw: Mapping[str, Any], r: _Reader) -> AccessRules:
    """``[access]`` → the access room's :class:`~rempart.access.rules.AccessRules`."""
    t = r.table(raw, "access", "access", required=False)
    d = AccessRules()
    durations = (
        "max_duration",
        "decision_timeout",
        "max_start_delay",
        "first_use_window",
        "break_glass_max_duration",
        "break_glass_review_window",
        "clock_skew",
    )
    counts = {
        "approvals_single_subject": 20,
        "approvals_bulk": 20,
        "approvals_sensitive": 20,
        "max_subjects": 1_000_000,
        "max_bulk_limit": 100_000_000,
    }
    r.known(t, "access", {*durations, *counts, "sensitive_collections"})
    values: dict[str, Any] = {name: r.duration(t, name, "access", getattr(d, name)) for name in durations}
    for name, high in counts.items():
        values[name] = r.integer(t, name, "access", getattr(d, name), 1, high)
    values["sensitive_collections"] = frozenset(
        r.strings(t, "sensitive_collections", "access", tuple(sorted(d.sensitive_collections)))
    )
    try:
        return AccessRules(**values)
    except ConfigurationError as exc:
        r.errors.add(str(exc.details.get("path", "access")), exc.message)
        return d


def _policy(raw: Mapping[str, Any], r: _Reader) -> PolicySettings:
    t = r.table(raw, "policy", "policy", required=False)
    d = PolicySettings()
    r.known(t, "policy", {"cache_size", "validate_requests"})
    validate = t.get("validate_requests", d.validate_requests)
    if not isinstance(validate, bool):
        r.errors.add("policy.validate_requests", f"expected true or false, got {validate!r}")
        validate = d.validate_requests
    return PolicySettings(
        cache_size=r.integer(t, "cache_size", "policy", d.cache_size, 0, 10_000_000),
        validate_requests=validate,
    )


def _server(raw: Mapping[str, Any], r: _Reader) -> ServerSettings:
    t = r.table(raw, "server", "server", required=False)
    d = ServerSettings()
    r.known(t, "server", {f for f in ServerSettings.__dataclass_fields__})
    return ServerSettings(
        host=r.string(t, "host", "server", d.host),
        port=r.integer(t, "port", "server", d.port, 1, 65535),
        max_body_bytes=r.integer(t, "max_body_bytes", "server", d.max_body_bytes, 1024, 1 << 30),
        token_lifetime=r.duration(t, "token_lifetime", "server", d.token_lifetime),
    )


def _witnesses(raw: Mapping[str, Any], r: _Reader) -> tuple[WitnessSettings, ...]:
    value = raw.get("witnesses", [])
    if not isinstance(value, list):
        r.errors.add("witnesses", "expected an array of tables ([[witnesses]])")
        return ()
    out: list[WitnessSettings] = []
    for i, item in enumerate(value):
        path = f"witnesses[{i}]"
        if not isinstance(item, Mapping):
            r.errors.add(path, "expected a table with name, vkey and url")
            continue
        r.known(item, path, {"name", "vkey", "url"})
        name = r.string(item, "name", path)
        vkey = r.string(item, "vkey", path)
        url = r.string(item, "url", path)
        if vkey:
            try:
                verifier = Verifier.parse(vkey)
            except RempartError as exc:
                r.errors.add(f"{path}.vkey", f"expected a note verifier key name+hexid+base64: {exc.message}")
            else:
                if name and verifier.name != name:
                    r.errors.add(f"{path}.vkey", f"the key is named {verifier.name!r}, not {name!r}")
        if url and not url.startswith(("http://", "https://")):
            r.errors.add(f"{path}.url", f"expected an http:// or https:// URL, got {url!r}")
        if name in {w.name for w in out}:
            r.errors.add(f"{path}.name", f"witness {name!r} is listed twice")
        out.append(WitnessSettings(name, vkey, url))
    return tuple(out)


def _catalog(raw: Mapping[str, Any], r: _Reader) -> Catalog:
    t = r.table(raw, "catalog", "catalog", required=False)
    if not t:
        return default_catalog()
    try:
        if "path" in t:
            r.known(t, "catalog", {"path"})
            return load_catalog(r.path(t, "path", "catalog"), key_path="catalog")
        return parse_catalog(t, path="catalog")
    except ConfigurationError as exc:
        for item in exc.details.get("errors", [{"path": "catalog", "message": exc.message}]):
            message = item["message"]
            prefix = f"{item['path']}: "
            r.errors.add(item["path"], message[len(prefix) :] if message.startswith(prefix) else message)
        return Catalog({})


_TOP = {
    "deployment",
    "control",
    "log",
    "keyring",
    "regions",
    "catalog",
    "access",
    "policy",
    "server",
    "witnesses",
    "governance",
}


def parse_config(raw: Mapping[str, Any], *, base: Path, source: Path | None = None) -> Config:
    """Validate a parsed TOML document; relative paths resolve against ``base``."""
    errors = _Errors()
    r = _Reader(errors, Path(base).resolve())
    r.known(raw, "", _TOP)
    errors.items = [(p.lstrip("."), m) for p, m in errors.items]
    deployment = r.table(raw, "deployment", "deployment", required=True)
    r.known(deployment, "deployment", {"name"})
    name = r.string(deployment, "name", "deployment")
    control = r.table(raw, "control", "control", required=True)
    r.known(control, "control", {"database"})
    control_db = r.database(control, "database", "control")
    log_t = r.table(raw, "log", "log", required=True)
    r.known(log_t, "log", {"database", "origin", "key_file", "checkpoint_interval", "gather_window"})
    origin = r.string(log_t, "origin", "log")
    if origin and (" " in origin or "+" in origin):
        errors.add("log.origin", "expected a log origin without spaces or '+' (e.g. example.com/log)")
    log = LogSettings(
        database=r.database(log_t, "database", "log"),
        origin=origin,
        key_file=r.path(log_t, "key_file", "log"),
        checkpoint_interval=r.number(log_t, "checkpoint_interval", "log", 1.0),
        gather_window=_gather_window(log_t.get("gather_window", 0.005), errors),
    )
    if log.database and log.database == control_db and control_db.startswith("sqlite:///"):
        errors.add(
            "log.database",
            "the log needs its own SQLite file (the control database holds its write lock while the "
            "log records an egress)",
        )
    keyring_t = r.table(raw, "keyring", "keyring", required=True)
    r.known(keyring_t, "keyring", {"path"})
    keyring = r.path(keyring_t, "path", "keyring")
    regions = _regions(raw, r)
    for region in regions.values():
        if region.store and region.store in (control_db, log.database):
            errors.add(
                f"regions.{region.name}.store",
                "a region's database holds that region's records only; "
                "it cannot be the control or log database",
            )
    catalog = _catalog(raw, r)
    access = _access(raw, r)
    if "sensitive_collections" not in r.table(raw, "access", "access", required=False):
        # The defaults name the shipped catalog's collections: keep those this catalog has.
        kept = frozenset(c for c in access.sensitive_collections if c in catalog.collections)
        access = replace(access, sensitive_collections=kept)
    for coll in sorted(access.sensitive_collections):
        if catalog.collections and coll not in catalog.collections:
            errors.add("access.sensitive_collections", f"unknown collection {coll!r} (not in the catalog)")
    policy = _policy(raw, r)
    server = _server(raw, r)
    witnesses = _witnesses(raw, r)
    gov_t = r.table(raw, "governance", "governance", required=False)
    r.known(gov_t, "governance", {"proposal_lifetime"})
    governance = GovernanceSettings(
        proposal_lifetime=r.duration(
            gov_t, "proposal_lifetime", "governance", GovernanceSettings().proposal_lifetime
        )
    )
    errors.raise_if_any()
    return Config(
        name=name,
        control_database=control_db,
        log=log,
        regions=regions,
        catalog=catalog,
        keyring=keyring,
        access=access,
        policy=policy,
        server=server,
        witnesses=witnesses,
        governance=governance,
        source=source,
    )


def load_config(path: Path | str) -> Config:
    """Read and validate a deployment file; relative paths resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"config: cannot read {file}: {exc.strerror}", path="config") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config: {file} is not valid TOML: {exc}", path="config") from exc
    return parse_config(raw, base=file.resolve().parent, source=file.resolve())


def _gather_window(value: Any, errors: _Errors) -> float:
    """``[log] gather_window``: 0 to 0.1 seconds (every append may wait this long)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 0.1:
        errors.add("log.gather_window", f"expected a number of seconds from 0 to 0.1, got {value!r}")
        return 0.005
    return float(value)


def default_config_text() -> str:
    """The embedded deployment: SQLite everywhere, regions ``us`` and ``row``, paths relative to data."""
    return """\
# Rempart: the embedded deployment (SQLite everywhere). Paths are relative to this file's folder.
[deployment]
name = "rempart-embedded"

[control]
database = "sqlite:///control.db"

[log]
database = "sqlite:///log.db"
origin = "rempart.local/log"
key_file = "keys/log.key"
checkpoint_interval = 1.0

[keyring]
path = "keys/keyring.json"

[regions.us]
store = "sqlite:///regions/us.db"
kek = "us"
relocation_to = ["row"]

[regions.us.egress]
destinations = ["parent-analytics", "interop-partners"]
budgets = { business_metrics = 100000, interoperability = 10000 }

[regions.row]
store = "sqlite:///regions/row.db"
kek = "row"
relocation_to = ["us"]

[regions.row.egress]
destinations = ["parent-analytics", "interop-partners", "us-custodian"]
budgets = { business_metrics = 1000000 }
"""


def default_config(data_dir: Path | str) -> Config:
    """The embedded default deployment with every file under ``data_dir``."""
    data = Path(data_dir).resolve()
    return parse_config(tomllib.loads(default_config_text()), base=data)

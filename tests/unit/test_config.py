"""The deployment file: defaults, relative paths, and every mistake reported with its key path."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from rempart.access.rules import AccessRules
from rempart.config import (
    Config,
    EgressRules,
    RegionConfig,
    default_config,
    default_config_text,
    load_config,
    parse_config,
    parse_duration,
)
from rempart.errors import ConfigurationError
from rempart.store.catalog import default_catalog
from rempart.tlog.note import Signer

BASE = """\
[deployment]
name = "t"
[control]
database = "sqlite:///control.db"
[log]
database = "sqlite:///log.db"
origin = "t.example/log"
key_file = "keys/log.key"
[keyring]
path = "keys/keyring.json"
"""

REGIONS = """\
[regions.us]
store = "sqlite:///regions/us.db"
kek = "us"
relocation_to = ["row"]
[regions.row]
store = "postgresql://rempart@db.row.internal:5432/row"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rempart.toml"
    path.write_text(text)
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.message.split("\n")


def test_the_default_config_and_its_text_agree(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    loaded = load_config(write(tmp_path, default_config_text()))
    assert loaded.source == (tmp_path / "rempart.toml").resolve()
    assert Config(**{f: getattr(loaded, f) for f in Config.__dataclass_fields__ if f != "source"}) == config
    root = tmp_path.resolve()
    assert config.control_database == f"sqlite:///{root}/control.db"
    assert config.log.database == f"sqlite:///{root}/log.db"
    assert config.log.key_file == root / "keys" / "log.key"
    assert config.keyring == root / "keys" / "keyring.json"
    assert config.regions == {
        "us": RegionConfig(
            "us",
            f"sqlite:///{root}/regions/us.db",
            "us",
            EgressRules(
                ("parent-analytics", "interop-partners"),
                {"business_metrics": 100000, "interoperability": 10000},
            ),
            ("row",),
        ),
        "row": RegionConfig(
            "row",
            f"sqlite:///{root}/regions/row.db",
            "row",
            EgressRules(
                ("parent-analytics", "interop-partners", "us-custodian"), {"business_metrics": 1000000}
            ),
            ("us",),
        ),
    }
    assert config.catalog == default_catalog()
    assert config.access == AccessRules()
    assert config.witnesses == ()


def test_postgres_regions_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, BASE.replace('"keys/keyring.json"', '"/etc/rempart/keyring.json"') + REGIONS)
    )
    assert config.regions["row"].store == "postgresql://rempart@db.row.internal:5432/row"
    assert config.regions["row"].kek == "row"  # defaults to the region's name
    assert config.keyring == Path("/etc/rempart/keyring.json")


def test_an_unknown_region_referenced(tmp_path: Path) -> None:
    text = BASE + REGIONS.replace('relocation_to = ["row"]', 'relocation_to = ["row", "eu"]')
    assert errors_of(tmp_path, text) == [
        "regions.us.relocation_to[1]: unknown region 'eu' (defined: row, us)"
    ]


def test_a_dsn_that_does_not_parse(tmp_path: Path) -> None:
    text = BASE + REGIONS.replace("postgresql://rempart@db.row.internal:5432/row", "postgresql://x?sslmode")
    [error] = errors_of(tmp_path, text)
    assert error.startswith("regions.row.store: PostgreSQL URL does not parse: ")
    assert error.endswith("(expected sqlite:///PATH or postgresql://…)")
    text = BASE + REGIONS.replace("postgresql://rempart@db.row.internal:5432/row", "mysql://db/row")
    assert errors_of(tmp_path, text) == [
        "regions.row.store: database URL 'mysql://db/row' is neither sqlite:///PATH nor postgresql://… "
        "(expected sqlite:///PATH or postgresql://…)"
    ]


def test_a_field_without_a_category_in_an_inline_catalog(tmp_path: Path) -> None:
    text = (
        BASE
        + REGIONS
        + """
[catalog.collections.profile.fields]
handle = { category = "public" }
birthdate = { description = "date of birth" }
country = { category = "excepted" }
"""
    )
    assert errors_of(tmp_path, text) == [
        "catalog.collections.profile.fields.birthdate.category: missing: every field needs a category "
        "(protected, excepted or public)",
        "catalog.collections.profile.fields.country.purposes: an excepted field must list the purposes it "
        "may "
        "leave for",
    ]


def test_a_catalog_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "cat.toml").write_text('[collections.notes.fields]\ntext = "protected"\n')
    config = load_config(write(tmp_path, BASE + REGIONS + '[catalog]\npath = "cat.toml"\n'))
    assert list(config.catalog.collections) == ["notes"]
    # The defaults name collections this catalog lacks.
    assert config.access.sensitive_collections == frozenset()
    assert errors_of(tmp_path, BASE + REGIONS + '[catalog]\npath = "missing.toml"\n')[0].startswith(
        "catalog: cannot read catalog file "
    )


def test_several_mistakes_are_reported_together_with_their_paths(tmp_path: Path) -> None:
    text = (
        BASE.replace('origin = "t.example/log"', 'origin = "has space"')
        + """
[regions.us]
store = "sqlite:///regions/us.db"
stroe = "typo"
[regions.us.egress]
destinations = ["Parent Co"]
budgets = { marketing = 10, business_metrics = -1 }
[regions.row]
store = "sqlite:///regions/us.db"
kek = "us"
[server]
port = 70000
[access]
max_duration = "forever"
[witnesses]
"""
    )
    with pytest.raises(ConfigurationError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.message.split("\n") == [
        "log.origin: expected a log origin without spaces or '+' (e.g. example.com/log)",
        "regions.us.stroe: unknown key (expected one of: egress, kek, relocation_to, store)",
        "regions.us.egress.destinations[0]: expected a destination name (lower-case letters, digits, . _ : "
        "/ -), "
        "got 'Parent Co'",
        "regions.us.egress.budgets.marketing: unknown purpose (expected one of: customer_support, "
        "legal_request, "
        "security_incident, service_debugging, data_subject_request, interoperability, business_metrics, "
        "safety_moderation)",
        "regions.us.egress.budgets.business_metrics: expected a number of records per day (an integer ≥ "
        "0), got -1",
        "regions.row.kek: key ring 'us' is already region 'us''s: each region has its own key",
        "regions.row.store: the same database as region 'us': each region has its own",
        'access.max_duration: expected a duration such as "90s", "15m", "4h" or "7d", got \'forever\'',
        "server.port: expected an integer from 1 to 65535, got 70000",
        "witnesses: expected an array of tables ([[witnesses]])",
    ]
    assert caught.value.details["path"] == "log.origin"
    assert len(caught.value.details["errors"]) == 10


def test_missing_tables_and_unknown_top_level_keys(tmp_path: Path) -> None:
    assert errors_of(tmp_path, '[deployment]\nname = "t"\n[extra]\n') == [
        "extra: unknown key (expected one of: access, catalog, control, deployment, governance, keyring, "
        "log, policy, "
        "regions, server, witnesses)",
        "control: missing table",
        "control.database: missing: expected a string",
        "log: missing table",
        "log.origin: missing: expected a string",
        "log.database: missing: expected a string",
        "log.key_file: missing: expected a string",
        "keyring: missing table",
        "keyring.path: missing: expected a string",
        "regions: missing table",
    ]


def test_a_region_cannot_share_the_control_database_and_sqlite_log_needs_its_own_file(tmp_path: Path) -> None:
    text = BASE.replace("sqlite:///log.db", "sqlite:///control.db") + REGIONS.replace(
        "sqlite:///regions/us.db", "sqlite:///control.db"
    )
    assert errors_of(tmp_path, text) == [
        "log.database: the log needs its own SQLite file (the control database holds its write lock while "
        "the "
        "log records an egress)",
        "regions.us.store: a region's database holds that region's records only; it cannot be the control or "
        "log database",
    ]


def test_witnesses_access_server_governance(tmp_path: Path) -> None:
    signer = Signer.generate("witness.example/w1")
    text = (
        BASE
        + REGIONS
        + f"""
[[witnesses]]
name = "witness.example/w1"
vkey = "{signer.vkey()}"
url = "https://witness.example/"
[[witnesses]]
name = "w2"
vkey = "not-a-key"
url = "ftp://w2"
[access]
approvals_bulk = 3
sensitive_collections = ["messages", "diaries"]
break_glass_max_duration = "30m"
[server]
token_lifetime = 900
[governance]
proposal_lifetime = "3d"
"""
    )
    errors = errors_of(tmp_path, text)
    assert errors[0] == "access.sensitive_collections: unknown collection 'diaries' (not in the catalog)"
    assert errors[1].startswith("witnesses[1].vkey: expected a note verifier key name+hexid+base64: ")
    assert errors[2:] == ["witnesses[1].url: expected an http:// or https:// URL, got 'ftp://w2'"]
    good = text.split('[[witnesses]]\nname = "w2"')[0] + text.split('url = "ftp://w2"\n')[1]
    config = load_config(write(tmp_path, good.replace('"messages", "diaries"', '"messages"')))
    assert config.witnesses[0].vkey == signer.vkey()
    assert config.access.approvals_bulk == 3
    assert config.access.break_glass_max_duration == timedelta(minutes=30)
    assert config.server.token_lifetime == timedelta(seconds=900)
    assert config.governance.proposal_lifetime == timedelta(days=3)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="^config: cannot read .*missing.toml: No such file or directory$"
    ):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match="^config: .*rempart.toml is not valid TOML: "):
        load_config(write(tmp_path, "[deployment\n"))


def test_the_policy_table_sets_the_cedar_memo(tmp_path: Path) -> None:
    text = BASE + REGIONS + "[policy]\ncache_size = 10\nvalidate_requests = false\n"
    config = load_config(write(tmp_path, text))
    assert (config.policy.cache_size, config.policy.validate_requests) == (10, False)
    assert errors_of(tmp_path, text.replace("= false", '= "no"')) == [
        "policy.validate_requests: expected true or false, got 'no'"
    ]


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(60) == timedelta(minutes=1)
    for bad in ("0s", "1w", "", -5, True, 1.5):
        with pytest.raises(ValueError, match="^expected a duration such as "):
            parse_duration(bad)


def test_parse_config_takes_an_already_parsed_document(tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(BASE + REGIONS), base=tmp_path)
    assert config.source is None
    assert config.regions["us"].store == f"sqlite:///{tmp_path.resolve()}/regions/us.db"


def test_one_region_name_rule_from_configuration_to_trust_root() -> None:
    """A region the configuration accepts is one a scope, a trust root and a release accept too."""
    from rempart.access.model import Scope
    from rempart.store.records import REGION_NAME

    for name in ("us", "row", "eu_west", "eu-west", "ap9"):
        assert REGION_NAME.fullmatch(name)
        assert Scope(name, frozenset({"contact"}), frozenset({"contact.email"}), ("a" * 64,)).region == name
    for name in ("US", "9us", "", "eu west", "x" * 33):
        assert not REGION_NAME.fullmatch(name)


def test_the_log_gather_window(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, BASE + REGIONS)).log.gather_window == 0.005
    text = BASE.replace("[keyring]", "gather_window = 0\n[keyring]") + REGIONS
    assert load_config(write(tmp_path, text)).log.gather_window == 0.0
    for bad in ("0.5", "-0.001", '"5ms"', "true"):
        value = tomllib.loads(f"v = {bad}")["v"]
        assert errors_of(tmp_path, text.replace("gather_window = 0", f"gather_window = {bad}")) == [
            f"log.gather_window: expected a number of seconds from 0 to 0.1, got {value!r}"
        ]

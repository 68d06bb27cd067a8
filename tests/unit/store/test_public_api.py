"""The store's and the config's public names are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "rempart.config": [
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
    ],
    "rempart.store": [],
    "rempart.store.catalog": [
        "NAME_PATTERN",
        "PURPOSES",
        "Catalog",
        "Category",
        "CollectionSpec",
        "FieldSpec",
        "check_purpose",
        "default_catalog",
        "load_catalog",
        "parse_catalog",
    ],
    "rempart.store.keys": [
        "KEY_ID_PATTERN",
        "RING_PATTERN",
        "KeyCustody",
        "LocalKeyring",
        "WrappedKey",
        "next_key_id",
        "wrapped_key_digest",
    ],
    "rempart.store.records": [
        "DESTINATION_NAME",
        "MAX_FIELD_BYTES",
        "MAX_PAGE",
        "MAX_RECORD_BYTES",
        "REGION_NAME",
        "Actor",
        "Page",
        "Record",
        "RecordKey",
        "check_id",
        "check_limit",
        "check_org",
        "decode_cursor",
        "decode_value",
        "encode_cursor",
        "encode_value",
        "length_prefixed",
    ],
    "rempart.store.region": [
        "SCHEMA",
        "PreparedKeys",
        "RegionStore",
        "SealedRecord",
        "SubjectKeyRow",
        "envelope_binding",
        "open_record",
        "open_subject_keys",
        "prepare_subject_keys",
        "seal_record",
    ],
    "rempart.store.directory": ["SCHEMA", "SubjectDirectory", "SubjectEntry"],
    "rempart.store.egress": [
        "SCHEMA",
        "EgressBudgets",
        "EgressExceptions",
        "EgressRequest",
        "EgressTransfer",
        "FieldClasses",
        "NoEgressExceptions",
        "classify_fields",
        "encode_payload",
    ],
    "rempart.store.service": [
        "SUBJECTS_PER_EVENT",
        "Actor",
        "ErasureReceipt",
        "ReconcileReport",
        "RecordService",
        "RelocationReceipt",
        "RotationReport",
        "SubjectInfo",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"

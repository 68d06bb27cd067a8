"""The data catalog: the shipped default, and every mistake in a custom one."""

from __future__ import annotations

import pytest

from rempart.errors import ConfigurationError, InvalidInput
from rempart.store.catalog import PURPOSES, Category, check_purpose, default_catalog, parse_catalog


def test_the_purpose_codes_are_the_shared_list() -> None:
    assert PURPOSES == (
        "customer_support",
        "legal_request",
        "security_incident",
        "service_debugging",
        "data_subject_request",
        "interoperability",
        "business_metrics",
        "safety_moderation",
    )
    assert check_purpose("legal_request") == "legal_request"
    with pytest.raises(InvalidInput, match=r"^purpose 'ads' is not a known purpose code \(expected one of: "):
        check_purpose("ads")


@pytest.mark.parametrize(
    ("collection", "field", "category", "purposes"),
    [
        ("profile", "handle", Category.PUBLIC, set()),
        ("profile", "birthdate", Category.PROTECTED, set()),
        ("contact", "email", Category.PROTECTED, set()),
        ("contact", "phone", Category.PROTECTED, set()),
        ("device", "device_id", Category.PROTECTED, set()),
        ("device", "ip_address", Category.PROTECTED, set()),
        ("device", "advertising_id", Category.PROTECTED, set()),
        ("device", "os_version", Category.EXCEPTED, {"interoperability", "service_debugging"}),
        ("device", "app_version", Category.EXCEPTED, {"interoperability", "service_debugging"}),
        ("location", "precise", Category.PROTECTED, set()),
        (
            "location",
            "country",
            Category.EXCEPTED,
            {"interoperability", "business_metrics", "safety_moderation"},
        ),
        ("messages", "body", Category.PROTECTED, set()),
        ("watch_history", "video_id", Category.PROTECTED, set()),
        ("watch_history", "daily_views", Category.EXCEPTED, {"business_metrics"}),
        ("videos", "title", Category.PUBLIC, set()),
        ("videos", "upload_ip", Category.PROTECTED, set()),
        ("engagement_metrics", "views", Category.EXCEPTED, {"business_metrics"}),
    ],
)
def test_the_default_catalog(collection: str, field: str, category: Category, purposes: set[str]) -> None:
    spec = default_catalog().field(collection, field)
    assert (spec.category, set(spec.purposes)) == (category, purposes)
    assert spec.sealed is (category is not Category.PUBLIC)


def test_the_default_catalog_lists_the_platforms_collections() -> None:
    assert sorted(default_catalog().collections) == [
        "contact",
        "device",
        "engagement_metrics",
        "location",
        "messages",
        "profile",
        "videos",
        "watch_history",
    ]


def test_every_mistake_in_a_catalog_is_reported_with_its_path() -> None:
    raw = {
        "collections": {
            "notes": {
                "fields": {
                    "text": {"category": "secret"},
                    "tag": {"category": "public", "purposes": ["business_metrics"]},
                    "mood": {"category": "excepted", "purposes": ["ads"]},
                    "Bad-Name": "public",
                    "colour": {"category": "public", "colour": "red"},
                }
            },
            "empty": {"fields": {}},
        },
        "version": 2,
    }
    with pytest.raises(ConfigurationError) as caught:
        parse_catalog(raw)
    assert caught.value.message.split("\n") == [
        "catalog.version: unknown key (expected: collections)",
        "catalog.collections.notes.fields.text.category: expected protected, excepted or public, got "
        "'secret'",
        "catalog.collections.notes.fields.tag.purposes: only excepted fields list purposes; this one is "
        "public",
        "catalog.collections.notes.fields.mood.purposes[0]: unknown purpose 'ads' (expected one of: "
        + ", ".join(PURPOSES)
        + ")",
        "catalog.collections.notes.fields.Bad-Name: field names are lower_snake words of at most 63 "
        "characters",
        "catalog.collections.notes.fields.colour.colour: unknown key (expected one of: category, "
        "description, "
        "purposes)",
        "catalog.collections.empty.fields: expected a table of at least one field",
    ]
    assert caught.value.details["path"] == "catalog.version"


def test_lookups_of_unknown_names_fail_closed() -> None:
    catalog = default_catalog()
    with pytest.raises(
        InvalidInput, match=r"^collection 'wallet' is not in the catalog \(known: contact, device"
    ):
        catalog.collection("wallet")
    with pytest.raises(
        InvalidInput, match=r"^collection 'contact' has no field 'fax' in the catalog \(known: "
    ):
        catalog.field("contact", "fax")

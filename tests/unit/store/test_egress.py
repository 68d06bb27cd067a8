"""Egress: one door, the region's rules, a digest of exactly what left, and a daily budget."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from rempart.errors import AuditUnavailable, InvalidInput, PermissionDenied, ResidencyViolation
from rempart.store.egress import EgressRequest
from tests.unit.store.conftest import OPERATOR, Deployment, open_deployment

PARENT = "parent-analytics"


def seed(d: Deployment) -> None:
    svc = d.service
    for i in range(4):
        sid = f"u-{i}"
        svc.create_subject(OPERATOR, sid, "us")
        svc.write(
            OPERATOR,
            sid,
            "videos",
            "v1",
            {"title": f"Clip {i}", "visibility": "public", "upload_ip": "10.1.1.1"},
        )
        svc.write(
            OPERATOR, sid, "device", "phone", {"os_name": "iOS", "os_version": "17.4", "device_id": f"D{i}"}
        )
        svc.write(OPERATOR, sid, "engagement_metrics", "2026-01-01", {"day": "2026-01-01", "views": 10 * i})


@pytest.fixture
def seeded(deployment: Deployment) -> Deployment:
    seed(deployment)
    return deployment


def test_public_fields_leave_with_a_digest_of_exactly_the_payload(seeded: Deployment) -> None:
    svc = seeded.service
    transfer = svc.egress(
        OPERATOR,
        EgressRequest(
            region="us",
            collection="videos",
            fields=("title",),
            purpose="business_metrics",
            destination=PARENT,
        ),
    )
    assert transfer.count == 4
    assert transfer.digest == hashlib.sha256(transfer.payload).hexdigest()
    doc = json.loads(transfer.payload)
    assert [r["fields"] for r in doc["records"]] == [{"title": f"Clip {i}"} for i in range(4)]
    assert doc["records"][0]["subject"] == svc.subject_commitment("u-0")
    assert b"u-0" not in transfer.payload and b"10.1.1.1" not in transfer.payload
    event = seeded.last_event()
    assert event.type == "egress.transfer"
    assert dict(event.body) == {
        "region": "us",
        "destination": PARENT,
        "purpose": "business_metrics",
        "collection": "videos",
        "fields": ["title"],
        "count": 4,
        "digest": transfer.digest,
        "bytes": len(transfer.payload),
        "exception": None,
        "requested_by": {"principal": "alice", "org": "operator"},
    }
    assert transfer.position.index == seeded.storage.size() - 1


def test_a_destination_the_rules_do_not_list_is_refused(seeded: Deployment) -> None:
    with pytest.raises(ResidencyViolation) as caught:
        seeded.service.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="videos",
                fields=("title",),
                purpose="business_metrics",
                destination="parent-ml-training",
            ),
        )
    assert str(caught.value) == (
        "egress from 'us' to 'parent-ml-training' is refused: not an allowed destination "
        "(allowed: parent-analytics)"
    )
    event = seeded.last_event()
    assert (event.type, event.body["why"], event.body["destination"]) == (
        "egress.refused",
        "destination_not_allowed",
        "parent-ml-training",
    )
    assert seeded.events("egress.transfer") == []


def test_excepted_fields_leave_only_for_their_purposes(seeded: Deployment) -> None:
    svc = seeded.service
    with pytest.raises(ResidencyViolation) as caught:
        svc.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="device",
                fields=("os_name", "os_version"),
                purpose="business_metrics",
                destination=PARENT,
            ),
        )
    assert str(caught.value) == (
        "egress refused: excepted field(s) os_name, os_version of 'device' may not leave for purpose "
        "'business_metrics'"
    )
    assert seeded.last_event().body["refused_fields"] == ["os_name", "os_version"]
    transfer = svc.egress(
        OPERATOR,
        EgressRequest(
            region="us",
            collection="device",
            fields=("os_name", "os_version"),
            purpose="interoperability",
            destination=PARENT,
        ),
    )
    assert [r["fields"] for r in transfer.records()] == [{"os_name": "iOS", "os_version": "17.4"}] * 4


def test_protected_fields_never_leave_without_an_approved_exception(seeded: Deployment) -> None:
    with pytest.raises(ResidencyViolation) as caught:
        seeded.service.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="videos",
                fields=("title", "upload_ip"),
                purpose="security_incident",
                destination=PARENT,
            ),
        )
    assert str(caught.value) == (
        "egress refused: protected field(s) upload_ip of 'videos' never leave region 'us' without a "
        "governance-approved exception"
    )
    event = seeded.last_event()
    assert (event.type, event.body["why"], event.body["refused_fields"]) == (
        "egress.refused",
        "protected_field",
        ["upload_ip"],
    )


class OneApprovedException:
    """A governance register with one approval: videos.upload_ip, security_incident, to parent-analytics."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[str, ...], str, str, datetime]] = []

    def find(
        self, region: str, fields: Collection[str], purpose: str, destination: str, now: datetime
    ) -> str | None:
        self.asked.append((region, tuple(fields), purpose, destination, now))
        if (region, set(fields), purpose, destination) == (
            "us",
            {"videos.upload_ip"},
            "security_incident",
            PARENT,
        ):
            return "gov-exception-7"
        return None


@pytest.fixture
def with_exception(tmp_path: Path) -> Iterator[tuple[Deployment, OneApprovedException]]:
    exceptions = OneApprovedException()
    d = open_deployment(tmp_path / "exc", exceptions=exceptions)
    seed(d)
    yield d, exceptions
    d.service.close()
    d.log.close()


def test_an_approved_exception_lets_named_protected_fields_leave(
    with_exception: tuple[Deployment, OneApprovedException],
) -> None:
    d, exceptions = with_exception
    transfer = d.service.egress(
        OPERATOR,
        EgressRequest(
            region="us",
            collection="videos",
            fields=("upload_ip",),
            purpose="security_incident",
            destination=PARENT,
            subject_ids=("u-2",),
        ),
    )
    assert transfer.records()[0]["fields"] == {"upload_ip": "10.1.1.1"}
    assert (transfer.count, transfer.exception) == (1, "gov-exception-7")
    assert d.last_event().body["exception"] == "gov-exception-7"
    assert exceptions.asked == [("us", ("videos.upload_ip",), "security_incident", PARENT, d.clock.now())]
    with pytest.raises(ResidencyViolation):
        d.service.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="device",
                fields=("device_id",),
                purpose="security_incident",
                destination=PARENT,
            ),
        )


def test_the_daily_budget_of_excepted_records_is_enforced(seeded: Deployment) -> None:
    svc = seeded.service
    request = EgressRequest(
        region="us",
        collection="engagement_metrics",
        fields=("day", "views"),
        purpose="business_metrics",
        destination=PARENT,
        subject_ids=("u-0", "u-1"),
    )
    first = svc.egress(OPERATOR, request)
    assert first.count == 2
    assert seeded.last_event().body["budget"] == {"day": "2026-01-01", "limit": 3, "used": 2}
    with pytest.raises(PermissionDenied) as caught:
        svc.egress(OPERATOR, request)
    assert str(caught.value) == (
        "egress refused: the 'business_metrics' budget of region 'us' is spent for 2026-01-01 "
        "(3 records a day; 2 used, 2 asked)"
    )
    event = seeded.last_event()
    assert (event.type, event.body["why"], event.body["budget"]) == (
        "egress.refused",
        "budget_spent",
        {"day": "2026-01-01", "limit": 3, "asked": 2},
    )
    one = EgressRequest(
        region="us",
        collection="engagement_metrics",
        fields=("views",),
        purpose="business_metrics",
        destination=PARENT,
        subject_ids=("u-3",),
    )
    assert svc.egress(OPERATOR, one).count == 1  # exactly fills the budget
    # Public-only transfers do not spend it.
    public = EgressRequest(
        region="us",
        collection="engagement_metrics",
        fields=("day",),
        purpose="business_metrics",
        destination=PARENT,
    )
    assert svc.egress(OPERATOR, public).count == 4
    seeded.clock.advance(days=1)
    assert svc.egress(OPERATOR, request).count == 2
    assert seeded.control("SELECT day, used FROM store_egress_budget ORDER BY day") == [
        ("2026-01-01", 3),
        ("2026-01-02", 2),
    ]


def test_egress_fails_closed_and_spends_no_budget_when_the_log_is_down(seeded: Deployment) -> None:
    request = EgressRequest(
        region="us",
        collection="engagement_metrics",
        fields=("views",),
        purpose="business_metrics",
        destination=PARENT,
        subject_ids=("u-0",),
    )
    seeded.storage.down = True
    with pytest.raises(AuditUnavailable):
        seeded.service.egress(OPERATOR, request)
    seeded.storage.down = False
    assert seeded.control("SELECT COALESCE(SUM(used), 0) FROM store_egress_budget") == [(0,)]
    assert seeded.service.egress(OPERATOR, request).count == 1


def test_malformed_egress_requests_are_refused() -> None:
    with pytest.raises(InvalidInput, match="^purpose 'marketing' is not a known purpose code"):
        EgressRequest(
            region="us", collection="videos", fields=("title",), purpose="marketing", destination=PARENT
        )
    with pytest.raises(InvalidInput, match="^an egress names at least one field, as a tuple$"):
        EgressRequest(
            region="us", collection="videos", fields=(), purpose="business_metrics", destination=PARENT
        )
    with pytest.raises(InvalidInput, match="^an egress sends from 1 to 100000 records, not 0$"):
        EgressRequest(
            region="us",
            collection="videos",
            fields=("title",),
            purpose="business_metrics",
            destination=PARENT,
            limit=0,
        )


def test_where_filters_and_unknown_fields(seeded: Deployment) -> None:
    svc = seeded.service
    svc.write(OPERATOR, "u-0", "videos", "v2", {"title": "Secret", "visibility": "private"})
    transfer = svc.egress(
        OPERATOR,
        EgressRequest(
            region="us",
            collection="videos",
            fields=("title",),
            purpose="business_metrics",
            destination=PARENT,
            where={"visibility": "public"},
        ),
    )
    assert sorted(r["fields"]["title"] for r in transfer.records()) == [f"Clip {i}" for i in range(4)]
    with pytest.raises(InvalidInput, match=r"^collection 'videos' has no field 'likes' in the catalog"):
        svc.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="videos",
                fields=("likes",),
                purpose="business_metrics",
                destination=PARENT,
            ),
        )
    with pytest.raises(
        InvalidInput, match="^videos.upload_ip is protected: only public fields can be filtered on$"
    ):
        svc.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="videos",
                fields=("title",),
                purpose="business_metrics",
                destination=PARENT,
                where={"upload_ip": "10.1.1.1"},
            ),
        )


def test_an_egress_refusal_that_cannot_be_recorded_is_still_refused(seeded: Deployment) -> None:
    seeded.storage.down = True
    with pytest.raises(AuditUnavailable):
        seeded.service.egress(
            OPERATOR,
            EgressRequest(
                region="us",
                collection="videos",
                fields=("upload_ip",),
                purpose="security_incident",
                destination=PARENT,
            ),
        )

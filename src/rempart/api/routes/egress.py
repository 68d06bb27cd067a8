"""Egress and releases: the one door out of a region, and what deployers check before loading code."""

from __future__ import annotations

import re
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from rempart.api._edge import acting, operations
from rempart.api.models import EgressBody, EgressView, ReleaseStatusView
from rempart.errors import NotFound
from rempart.store.records import REGION_NAME

router = APIRouter()

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\Z")


@router.post("/egress", response_model=EgressView, tags=["egress"])
def egress(request: Request, body: EgressBody) -> Any:
    """Send records out of a region: policy, then the region's rules; recorded with a digest of what left."""
    return operations(request).egress(
        acting(request),
        region=body.region,
        collection=body.collection,
        fields=body.fields,
        purpose=body.purpose,
        destination=body.destination,
        subject_ids=body.subject_ids,
        where=body.where,
        limit=body.limit,
    )


@router.get("/releases/verify", response_model=ReleaseStatusView, tags=["releases"])
def verify_release(
    request: Request,
    digest: Annotated[str, Query(min_length=1, max_length=80, description="sha256:<hex> or <hex>.")],
    region: Annotated[str, Query(min_length=1, max_length=32)],
) -> Any:
    """Approved (with its signers), pending, revoked, or unknown."""
    return operations(request).verify_release(acting(request), digest, region)


@router.get(
    "/tuf/{region}/{path:path}",
    tags=["releases"],
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "application/octet-stream": {}},
            "description": "A TUF metadata or target file.",
        }
    },
)
def tuf_file(request: Request, region: Annotated[str, Path()], path: str) -> Response:
    """TUF metadata and targets published for a region (public): any TUF client verifies them."""
    root: FsPath | None = request.app.state.tuf_dir
    parts = path.split("/")
    if (
        root is None
        or not REGION_NAME.fullmatch(region)
        or not parts
        or not all(_PART.fullmatch(p) for p in parts)
    ):
        raise NotFound(f"no TUF file /tuf/{region}/{path}")
    file = root.joinpath(region, *parts)
    try:
        data = file.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(f"no TUF file /tuf/{region}/{path}") from exc
    media = "application/json" if file.suffix == ".json" else "application/octet-stream"
    return Response(data, media_type=media, headers={"Cache-Control": "no-cache, max-age=0"})

"""The public log read path (C2SP tlog-tiles) and proofs, served without authentication."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from rempart.api._edge import operations
from rempart.api.models import ConsistencyProofView, InclusionProofView, WitnessingView
from rempart.errors import InvalidInput, NotFound

router = APIRouter(prefix="/log", tags=["log"])


def _resource(request: Request, path: str) -> Response:
    try:
        resource = operations(request).d.read_path.get(path)
    except InvalidInput as exc:
        raise NotFound(f"no log resource /log/{path}: {exc.message}") from exc
    return Response(
        resource.body, media_type=resource.content_type, headers={"Cache-Control": resource.cache_control}
    )


@router.get(
    "/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The signed checkpoint note."}},
)
def checkpoint(request: Request) -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint), with any witness cosignatures."""
    return _resource(request, "checkpoint")


@router.get(
    "/tile/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "A tile or entry bundle."}},
)
def tile(request: Request, path: str) -> Response:
    """``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]`` (full tiles are immutable)."""
    return _resource(request, f"tile/{path}")


@router.get("/proof/inclusion", response_model=InclusionProofView)
def inclusion(
    request: Request,
    index: Annotated[int, Query(ge=0, le=2**62)],
    size: Annotated[int, Query(ge=1, le=2**62)],
) -> Any:
    """An RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (hashes base64)."""
    return operations(request).inclusion_proof(index, size)


@router.get("/proof/consistency", response_model=ConsistencyProofView)
def consistency(
    request: Request,
    old: Annotated[int, Query(ge=1, le=2**62)],
    new: Annotated[int, Query(ge=1, le=2**62)],
) -> Any:
    """An RFC 9162 consistency proof from tree size ``old`` to ``new`` (hashes base64)."""
    return operations(request).consistency_proof(old, new)


@router.get("/witnessing", response_model=WitnessingView)
def witnessing(request: Request) -> Any:
    """Who cosigned the latest checkpoint, and how each witness stands."""
    return operations(request).witnessing()

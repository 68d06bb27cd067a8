"""Records: ``/subjects/{subject_id}/records/{collection}[/{record_id}]``, always through the gateway."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rempart.api._edge import COLLECTION, SUBJECT_ID, PurposeCode, acting, operations
from rempart.api._params import not_one_of, pattern_mismatch, published_parameters, whole_match
from rempart.api.models import RecordDeletedView, RecordPageView, RecordView, RecordWriteBody

router = APIRouter(tags=["records"])

SubjectId = Annotated[str, Path(pattern=SUBJECT_ID, description="The data subject's id.")]
Collection = Annotated[str, Path(pattern=COLLECTION, description="A catalog collection.")]
RecordId = Annotated[str, Path(pattern=SUBJECT_ID, description="The record's id within the collection.")]
Purpose = Annotated[PurposeCode, Query(description="Why: one of the purpose codes.")]
Fields = Annotated[
    list[str] | None,
    Query(description="Only these fields (repeat, or comma-separate); default: every field."),
]


def _declared_read(
    subject_id: SubjectId,
    collection: Collection,
    record_id: RecordId,
    purpose: Purpose,
    fields: Fields = None,
) -> None:
    """The parameters of ``GET …/{record_id}`` as published; :func:`read_arguments` checks them."""


_READ_PATH = "/subjects/{subject_id}/records/{collection}/{record_id}"
_READ_PARAMETERS = published_parameters(_READ_PATH, _declared_read)
_SUBJECT = whole_match(SUBJECT_ID)
_COLLECTION = whole_match(COLLECTION)
_PURPOSES = frozenset(get_args(PurposeCode))


def read_arguments(request: Request) -> tuple[str, str, str, str, list[str] | None]:
    """The read's path and query parameters, checked exactly as published (see ``_declared_read``).

    The hot route reads them itself: FastAPI's per-parameter validation costs
    more than the rest of the request. A mismatch raises the same
    ``RequestValidationError`` FastAPI would, so the answer is the same problem.
    """
    path = request.path_params
    errors: list[dict[str, Any]] = []
    for name, pattern in (("subject_id", _SUBJECT), ("collection", _COLLECTION), ("record_id", _SUBJECT)):
        if pattern.fullmatch(path[name]) is None:
            errors.append(pattern_mismatch(("path", name), path[name], pattern))
    query = request.query_params
    purpose = query.getlist("purpose")
    if not purpose:
        errors.append({"type": "missing", "loc": ("query", "purpose"), "msg": "Field required"})
    elif purpose[-1] not in _PURPOSES:
        errors.append(not_one_of(("query", "purpose"), purpose[-1], get_args(PurposeCode)))
    if errors:
        raise RequestValidationError(errors)
    fields = query.getlist("fields") or None
    return path["subject_id"], path["collection"], path["record_id"], purpose[-1], fields


@router.get(_READ_PATH, response_model=RecordView, openapi_extra={"parameters": _READ_PARAMETERS})
async def get_record(request: Request) -> Any:
    """Read one record: decided per field, recorded in the log, fields outside the decision masked.

    The hot path. On an all-SQLite deployment it runs on the event loop (each
    step is a short local query) and yields only while the log commits, so
    concurrent reads share group commits without a thread each; on PostgreSQL
    it runs in the thread pool, where network round trips do not stall the loop.
    """
    subject_id, collection, record_id, purpose, fields = read_arguments(request)
    ops = operations(request)
    if ops.inline:
        body = await ops.get_record_async(
            acting(request), subject_id, collection, record_id, purpose=purpose, fields=fields
        )
    else:

        def read() -> dict[str, Any]:
            return ops.get_record(
                acting(request), subject_id, collection, record_id, purpose=purpose, fields=fields
            )

        body = await run_in_threadpool(read)
    return JSONResponse(body)  # answered as is: its shape is RecordView, pinned by schemathesis


@router.get("/subjects/{subject_id}/records/{collection}", response_model=RecordPageView)
def list_records(
    request: Request,
    subject_id: SubjectId,
    collection: Collection,
    purpose: Purpose,
    fields: Fields = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Any:
    """A subject's records of one collection, a page at a time (``next_cursor`` for the next)."""
    principal = acting(request)
    return operations(request).list_records(
        principal, subject_id, collection, purpose=purpose, fields=fields, limit=limit, cursor=cursor
    )


@router.put("/subjects/{subject_id}/records/{collection}/{record_id}", response_model=RecordView)
def put_record(
    request: Request,
    subject_id: SubjectId,
    collection: Collection,
    record_id: RecordId,
    purpose: Purpose,
    body: RecordWriteBody,
) -> Any:
    """Create or replace a record in the subject's home region (every field must be allowed)."""
    principal = acting(request)
    return operations(request).put_record(
        principal,
        subject_id,
        collection,
        record_id,
        values=body.values,
        purpose=purpose,
        expected_version=body.expected_version,
        region=body.region,
    )


@router.delete("/subjects/{subject_id}/records/{collection}/{record_id}", response_model=RecordDeletedView)
def delete_record(
    request: Request,
    subject_id: SubjectId,
    collection: Collection,
    record_id: RecordId,
    purpose: Purpose,
    expected_version: Annotated[int, Query(ge=0, description="The version you read.")],
) -> Any:
    """Delete one record (needs ``erase`` on every field of its collection)."""
    principal = acting(request)
    return operations(request).delete_record(
        principal, subject_id, collection, record_id, purpose=purpose, expected_version=expected_version
    )

"""``rempart release …``: submit, review, revoke, verify, publish (TUF) and audit deployments.

``rempart release verify DIGEST --region R`` exits 0 only for an approved,
unrevoked release, and 1 otherwise (pending, revoked or unknown), so a deploy
script can gate on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rempart.cli._app import app, console, emit_json
from rempart.cli.governance import (
    DEFAULT_DATA_DIR,
    DataDir,
    JsonFlag,
    KeyFile,
    deployment,
    log_database_url,
    log_key_file,
    read_input,
)
from rempart.clock import SystemClock, format_time
from rempart.errors import InvalidInput, VerificationFailed
from rempart.events import Event, LogRecorder
from rempart.governance import (
    ArtifactKind,
    DirectoryArtifacts,
    ReleaseState,
    TufLifetimes,
    deployment_violations,
    record_deployment,
    release_text,
    revocation_text,
    sign_release,
)
from rempart.log import load_signer, open_log, open_storage

__all__ = ["release_app"]

release_app = typer.Typer(
    help="Releases: submitted by engineering, signed by custodian reviewers, verified by TUF."
)
app.add_typer(release_app, name="release")


@release_app.command("submit")
def submit(
    artifact: Annotated[Path, typer.Argument(help="The artifact file (its SHA-256 and length are taken).")],
    region: Annotated[str, typer.Option("--region")],
    kind: Annotated[str, typer.Option("--kind", help=", ".join(k.value for k in ArtifactKind))],
    submitter: Annotated[str, typer.Option("--submitter", help="Your principal id (org operator).")],
    key: KeyFile,
    name: Annotated[str | None, typer.Option("--name", help="Artifact name (default: file name).")] = None,
    metadata: Annotated[str, typer.Option("--metadata", help="Metadata as a JSON object.")] = "{}",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Submit an artifact for a region, signed with your own key (the submitter's approval)."""
    data = read_input(artifact)
    try:
        meta = json.loads(metadata)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--metadata is not JSON: {exc}") from exc
    now = SystemClock().now()
    with deployment(data_dir) as gov:
        text = release_text(
            deployment=gov.trust_roots.current().deployment,
            region=region,
            kind=kind,
            digest=hashlib.sha256(data).hexdigest(),
            length=len(data),
            name=name or artifact.name,
            metadata=meta,
            submitter=submitter,
            submitted=now,
        )
        release = gov.releases.submit(sign_release(text, [load_signer(key)]), now=now)
    console.print(f"submitted release {release.id}: {release.digest} for {release.region}", highlight=False)


@release_app.command("text")
def text(release_id: Annotated[str, typer.Argument()], data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Print a release's exact text, for a reviewer to read and sign offline."""
    with deployment(data_dir) as gov:
        print(gov.releases.get(release_id).text, end="")


@release_app.command("review")
def review(
    release_id: Annotated[str, typer.Argument()],
    key: KeyFile,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Sign a release as a custodian reviewer (it is deployable once the threshold is met)."""
    with deployment(data_dir) as gov:
        release = gov.releases.get(release_id)
        signed = sign_release(release.text, [load_signer(key)])
        gov.releases.review(release_id, signed, now=SystemClock().now())
        status = gov.releases.verify_release(release.digest, release.region)
    console.print(
        f"release {release_id}: {status.state.value} "
        f"({len(status.reviewers)} of {status.threshold} reviewers)",
        highlight=False,
    )


@release_app.command("revoke")
def revoke(
    release_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason")],
    key: KeyFile,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Revoke a release with your reviewer key (recorded; permanent)."""
    with deployment(data_dir) as gov:
        release = gov.releases.get(release_id)
        note = revocation_text(
            release=release.id, region=release.region, digest=release.digest, reason=reason
        )
        gov.releases.revoke(release_id, sign_release(note, [load_signer(key)]), now=SystemClock().now())
    console.print(f"release {release_id} revoked", highlight=False)


@release_app.command("verify")
def verify(
    digest: Annotated[str, typer.Argument(help="sha256:<hex> or the bare hex digest.")],
    region: Annotated[str, typer.Option("--region")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    json_out: JsonFlag = False,
) -> None:
    """Approved (with signers), pending, revoked or unknown; exits 1 (verification failed) unless approved."""
    with deployment(data_dir) as gov:
        status = gov.releases.verify_release(digest, region)
    if json_out:
        emit_json(status.to_json())
    if status.state is ReleaseState.APPROVED:
        if not json_out:
            console.print(
                f"approved: {status.digest} in {region} is release {status.release} ({status.name}), "
                f"submitted by {status.submitter}, signed by {', '.join(status.reviewers)}",
                highlight=False,
            )
        return
    if status.state is ReleaseState.REVOKED:
        message = (
            f"revoked: {status.digest} in {region} (release {status.release}) was revoked by "
            f"{status.revoked_by}: {status.reason}"
        )
    elif status.state is ReleaseState.PENDING:
        message = (
            f"pending: {status.digest} in {region} has {len(status.reviewers)} of {status.threshold} "
            "reviewer signatures"
        )
    else:
        message = f"unknown: no release of {status.digest} in {region}"
    raise VerificationFailed(message, state=status.state.value)


@release_app.command("publish")
def publish(
    out: Annotated[Path, typer.Option("--out", help="Folder to write <region>/metadata and targets into.")],
    registry_key: Annotated[Path, typer.Option("--registry-key", help="The registry's online key file.")],
    artifacts: Annotated[
        Path | None, typer.Option("--artifacts", help="Folder of artifacts named by SHA-256 hex.")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="One region (default: all).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Publish TUF metadata of the approved releases, per region."""
    now = SystemClock().now()
    with deployment(data_dir) as gov:
        publisher = gov.publisher(
            load_signer(registry_key),
            lifetimes=TufLifetimes(),
            artifacts=DirectoryArtifacts(artifacts) if artifacts else None,
        )
        done = [publisher.publish(region, out, now=now)] if region else publisher.publish_all(out, now=now)
    for p in done:
        console.print(
            f"{p.region}: metadata version {p.version}, root version {p.root_version}, "
            f"{len(p.targets)} target(s) in {p.path}",
            highlight=False,
        )


@release_app.command("deployed")
def deployed(
    digest: Annotated[str, typer.Argument()],
    region: Annotated[str, typer.Option("--region")],
    deployer: Annotated[str, typer.Option("--deployer", help="The deploying system's id.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Record that a deploying system loaded this digest in this region (release.deployed)."""
    with open_log(log_database_url(data_dir), load_signer(log_key_file(data_dir))) as log:
        position = record_deployment(
            LogRecorder(log), region=region, digest=digest, deployer=deployer, now=SystemClock().now()
        )
    console.print(f"recorded at log index {position.index}")


@release_app.command("violations")
def violations(data_dir: DataDir = DEFAULT_DATA_DIR, json_out: JsonFlag = False) -> None:
    """Replay the log: every deployed digest that was not approved there and then. Exits 1 if any."""
    storage = open_storage(log_database_url(data_dir))
    try:
        events = [Event.decode(e) for e in storage.read_entries(0, storage.size())]
    finally:
        storage.close()
    found = deployment_violations(events)
    if json_out:
        emit_json([v.to_json() for v in found])
    elif found:
        table = Table("time", "region", "digest", "deployer", "reason")
        for v in found:
            table.add_row(format_time(v.time), v.region, v.digest, v.deployer, v.reason)
        console.print(table)
    else:
        console.print("no deployment violations")
    if found:
        raise VerificationFailed(f"{len(found)} deployed digest(s) did not match an approved release")

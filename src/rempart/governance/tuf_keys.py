"""TUF root metadata derived from the trust root, and the key bridge between notes and TUF.

A board member's Ed25519 note key is also their TUF key: the same public key,
written as a securesystemslib ``ed25519`` key. The TUF root of every region's
repository is a pure function of a trust root version (see ADR 0002):

* root role: the board's keys and threshold;
* targets, snapshot, timestamp roles: the registry's online key, threshold 1;
* version: the trust root's version; expires: ``registry.root_expires``.

So when board members sign trust root version N they also sign the bytes of
TUF root version N (:func:`sign_tuf_root`), and a stock TUF client rotates
from root N-1 to root N under the same rule as the trust root chain: a
threshold of the old board and of the new.
"""

from __future__ import annotations

from collections.abc import Mapping

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, SSlibKey  # type: ignore[attr-defined]
from securesystemslib.signer import Signer as SslibSigner  # type: ignore[attr-defined]
from securesystemslib.signer._utils import compute_default_keyid
from tuf.api.metadata import Metadata, Role, Root  # type: ignore[attr-defined]

from rempart.errors import InvalidInput, VerificationFailed
from rempart.governance.trustroot import TrustRoot
from rempart.tlog.note import Signer, Verifier

__all__ = [
    "NoteKeyTufSigner",
    "root_metadata",
    "sign_tuf_root",
    "tuf_key",
    "tuf_keyid",
    "verify_tuf_root_signatures",
]


def tuf_key(verifier: Verifier) -> SSlibKey:
    """The securesystemslib form of an Ed25519 note key, with TUF's default key id."""
    keyval = {"public": verifier.public_key.hex()}
    keyid = compute_default_keyid("ed25519", "ed25519", keyval)
    return SSlibKey(keyid, "ed25519", "ed25519", keyval)


def tuf_keyid(verifier: Verifier) -> str:
    return str(tuf_key(verifier).keyid)


class NoteKeyTufSigner(SslibSigner):
    """A securesystemslib signer over a Rempart note signing key (Ed25519, pure)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = tuf_key(signer.verifier())

    @property
    def public_key(self) -> Key:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        return Signature(self._public.keyid, self._signer.sign(payload).hex())

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: object = None
    ) -> SslibSigner:
        raise ValueError("NoteKeyTufSigner is built from a Rempart key file, not from a URI")


def root_metadata(root: TrustRoot) -> Metadata[Root]:
    """The unsigned TUF root for a trust root version (identical for every region)."""
    keys: dict[str, Key] = {}
    board_ids = []
    for member in root.board:
        key = tuf_key(member.verifier)
        keys[key.keyid] = key
        board_ids.append(key.keyid)
    online = tuf_key(root.registry_verifier)
    keys[online.keyid] = online
    roles = {
        "root": Role(board_ids, root.board_threshold),
        "targets": Role([online.keyid], 1),
        "snapshot": Role([online.keyid], 1),
        "timestamp": Role([online.keyid], 1),
    }
    signed = Root(
        version=root.version,
        expires=root.root_expires.replace(microsecond=0),
        keys=keys,
        roles=roles,
        consistent_snapshot=True,
    )
    return Metadata(signed)


def sign_tuf_root(root: TrustRoot, signer: Signer) -> tuple[str, str]:
    """A board member's TUF signature on root version N: (key id, hex signature)."""
    signature = root_metadata(root).sign(NoteKeyTufSigner(signer))
    return str(signature.keyid), str(signature.signature)


def verify_tuf_root_signatures(
    previous: TrustRoot | None, root: TrustRoot, signatures: Mapping[str, str]
) -> Metadata[Root]:
    """The signed TUF root for ``root``, checked as a TUF client will check it.

    Every signature must be by a board key of this or the previous version and
    must verify; then both thresholds must be met. Errors name the version and
    the count, as the trust root chain's do.
    """
    metadata = root_metadata(root)
    payload = metadata.signed_bytes
    known: dict[str, tuple[str, SSlibKey]] = {}
    for board_root in (root, previous):
        if board_root is None:
            continue
        for member in board_root.board:
            key = tuf_key(member.verifier)
            known[key.keyid] = (member.id, key)
    for keyid, sig in signatures.items():
        if keyid not in known:
            raise VerificationFailed(
                f"TUF root version {root.version}: key id {keyid[:16]}… is not a board key "
                f"of trust root version {root.version}" + (f" or {previous.version}" if previous else ""),
                keyid=keyid,
            )
        member_id, key = known[keyid]
        signature = Signature(keyid, sig)
        try:
            key.verify_signature(signature, payload)
        except UnverifiedSignatureError as exc:
            raise VerificationFailed(
                f"TUF root version {root.version}: the signature by {member_id} does not verify",
                member=member_id,
            ) from exc
        metadata.signatures[keyid] = signature
    try:
        before = root_metadata(previous).signed if previous is not None else None
        result = metadata.signed.get_root_verification_result(before, payload, metadata.signatures)
    except ValueError as exc:
        raise InvalidInput(f"TUF root version {root.version}: {exc}") from exc
    parts = [("its own board", result.second)]
    if previous is not None:
        parts.insert(0, (f"the board of version {previous.version}", result.first))
    for what, part in parts:
        if not part:
            raise VerificationFailed(
                f"TUF root version {root.version}: {len(part.signed)} of {part.threshold} "
                f"signatures from {what}; {part.threshold - len(part.signed)} missing",
                version=root.version,
            )
    return metadata

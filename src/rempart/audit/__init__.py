"""What outsiders run: the witness server, the auditor's mirror, invariant replay, reports, subject reports.

Nothing here needs the operator's trust: every module checks signatures,
cosignatures and Merkle proofs against keys it is given, and keeps evidence of
what did not verify.
"""

from __future__ import annotations

__all__: list[str] = []

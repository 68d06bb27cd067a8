"""The composition root: one deployment's rooms, opened from its configuration and wired once.

The API server, the CLI and the embedded SDK all start here, so every edge
runs the same services in the same order:

control database → transparency log (+ witnesses) → recorder → principals,
tokens → policy store and engine → governance (trust root, proposals,
releases) → record service (with governance's egress exceptions) → access
service (approver roster from the trust root once one is installed) →
decision batcher → gateway.

>>> import tempfile
>>> from rempart.config import default_config
>>> d = Deployment.open(default_config(tempfile.mkdtemp()))
>>> d.log.size >= 1   # opening records the initial policy set
True
>>> d.close()
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from rempart.access import (
    AccessService,
    GrantStore,
    PrincipalRoster,
    PrincipalStore,
    RosterEntry,
    TokenStore,
)
from rempart.access.subject_tokens import SubjectTokenStore
from rempart.clock import Clock, SystemClock
from rempart.config import Config
from rempart.db import Database
from rempart.events import LogRecorder
from rempart.gateway import Gateway
from rempart.governance import DirectorySubmitterKeys, Governance, ProposalKind
from rempart.governance.appliers import CatalogClassificationApplier, RegionEgressRulesApplier
from rempart.governance.proposals import Proposal
from rempart.log import create_signer, load_signer, open_log
from rempart.log.sequencer import TransparencyLog
from rempart.log.serving import LogReadPath
from rempart.log.witnessing import CheckpointWitnessing, WitnessAddress, WitnessEndpoint
from rempart.policy import DEFAULT_POLICIES, CompiledPolicies, PolicyEngine, PolicySchema
from rempart.policy.batcher import DecisionBatcher
from rempart.policy.store import PolicyStore
from rempart.store.governed import GovernedRules
from rempart.store.service import RecordService
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.note import Signer

__all__ = ["Deployment", "PolicySetApplier", "RosterInForce"]

_log = logging.getLogger("rempart.deployment")

SYSTEM_ACTOR = "system:rempart"


class PolicySetApplier:
    """Governance applier for ``policy_set`` proposals: the board's text goes into force."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    def check(self, proposal: Proposal) -> None:
        CompiledPolicies.compile(str(proposal.payload["policies"]), self.store.schema)

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        text = str(proposal.payload["policies"])
        latest = self.store.latest()
        if latest is not None and latest.text == text:  # idempotent after a crash
            return f"policy set {latest.version} already in force"
        activation = self.store.activate(
            text, reason=f"governance proposal {proposal.id}", actor=f"proposal:{proposal.id}"
        )
        return f"policy set {activation.version} in force"


class RosterInForce:
    """Who may approve: the trust root's custodian approvers once a trust root is installed.

    With a trust root, an approver is a principal the trust root names as a
    custodian approver, with the key it names, who is also an enabled
    custodian principal here (Cedar needs their org and roles). Before the
    first trust root (a deployment being bootstrapped) the principals table
    alone decides: org custodian, role approver, a registered key.
    """

    def __init__(self, governance: Governance, principals: PrincipalStore) -> None:
        self.governance = governance
        self.principals = principals
        self.fallback = PrincipalRoster(principals)

    def lookup(self, principal_id: str) -> RosterEntry | None:
        root = self.governance.trust_roots.current_or_none()
        if root is None:
            return self.fallback.lookup(principal_id)
        verifier = root.approver_roster.get(principal_id)
        principal = self.principals.find(principal_id)
        if verifier is None or principal is None or principal.disabled or principal.org != "custodian":
            return None
        return RosterEntry(principal_id, verifier)


class Deployment:
    """Every room of one deployment, opened and wired; close it to stop the log cleanly."""

    def __init__(self, config: Config, clock: Clock, stack: ExitStack) -> None:
        self.config = config
        self.clock = clock
        self._stack = stack
        self.control: Database
        self.log: TransparencyLog
        self.log_signer: Signer
        self.recorder: LogRecorder
        self.read_path: LogReadPath
        self.principals: PrincipalStore
        self.tokens: TokenStore
        self.subject_tokens: SubjectTokenStore
        self.policy_engine: PolicyEngine
        self.policies: PolicyStore
        self.governance: Governance
        self.records: RecordService
        self.rules: GovernedRules
        self.grants: GrantStore
        self.access: AccessService
        self.decisions: DecisionBatcher
        self.gateway: Gateway
        self.witnessing: CheckpointWitnessing | None = None

    @classmethod
    def open(cls, config: Config, *, clock: Clock | None = None) -> Deployment:
        """Open every room; create the log key on first run (the embedded default does)."""
        stack = ExitStack()
        d = cls(config, clock or SystemClock(), stack)
        try:
            d._open()
        except BaseException:
            stack.close()
            raise
        return d

    def _open(self) -> None:
        config, stack = self.config, self._stack
        self.control = Database.open(config.control_database)
        stack.callback(self.control.close)

        key_file = Path(config.log.key_file)
        self.log_signer = (
            load_signer(key_file) if key_file.exists() else create_signer(key_file, config.log.origin)
        )
        self.log = open_log(
            config.log.database,
            self.log_signer,
            origin=config.log.origin,
            checkpoint_interval=config.log.checkpoint_interval,
            gather_window=config.log.gather_window,
        )
        stack.callback(self.log.close)
        self.recorder = LogRecorder(self.log)
        self.read_path = LogReadPath(self.log.storage)

        self.principals = PrincipalStore(self.control, recorder=self.recorder, clock=self.clock)
        self.tokens = TokenStore(self.control, recorder=self.recorder, clock=self.clock)
        self.subject_tokens = SubjectTokenStore(self.control, recorder=self.recorder)

        schema = PolicySchema.default()
        self.policy_engine = PolicyEngine(
            CompiledPolicies.compile(DEFAULT_POLICIES, schema),
            cache_size=config.policy.cache_size,
            validate_requests=config.policy.validate_requests,
        )
        self.policies = PolicyStore(
            self.control, recorder=self.recorder, clock=self.clock, engine=self.policy_engine, schema=schema
        )
        self.policies.ensure_active(DEFAULT_POLICIES, actor=SYSTEM_ACTOR)

        self.governance = Governance(
            db=self.control,
            recorder=self.recorder,
            submitters=DirectorySubmitterKeys(self.principals),
            proposal_lifetime=config.governance.proposal_lifetime,
            appliers={ProposalKind.POLICY_SET: PolicySetApplier(self.policies)},
        )
        self._start_witnessing()
        self.records = RecordService.open(
            config,
            recorder=self.recorder,
            clock=self.clock,
            exceptions=self.governance.egress_exceptions,
        )
        stack.callback(self.records.close)
        # The catalog classification and egress rules in force: the file's, as the board amended them.
        self.rules = GovernedRules(self.control)
        self._rules_stamp = self.rules.stamp()
        self.rules.lay_over(self.records, config.catalog, config.regions)
        for kind, applier_type in (
            (ProposalKind.CATALOG_CLASSIFICATION, CatalogClassificationApplier),
            (ProposalKind.REGION_EGRESS_RULES, RegionEgressRulesApplier),
        ):
            self.governance.proposals.register(
                kind,
                applier_type(
                    self.records, self.rules, base_catalog=config.catalog, base_regions=config.regions
                ),
            )

        self.grants = GrantStore(self.control, recorder=self.recorder)
        self.access = AccessService(
            principals=self.principals,
            grants=self.grants,
            engine=self.policy_engine,
            roster=RosterInForce(self.governance, self.principals),
            rules=config.access,
        )
        self.decisions = DecisionBatcher(self.policy_engine)
        stack.callback(self.decisions.close)
        self.gateway = Gateway(
            records=self.records,
            access=self.access,
            decisions=self.decisions,
            recorder=self.recorder,
            clock=self.clock,
        )

    def _start_witnessing(self) -> None:
        """Send each new checkpoint to the witnesses, as the trust root in force names them.

        Before the first trust root, the configuration's ``[[witnesses]]`` are
        used and every one of them must cosign.
        """
        root = self.governance.trust_roots.current_or_none()
        witnesses: list[WitnessAddress]
        if root is not None and root.witnesses:
            witnesses, threshold = list(root.witnesses), root.witness_threshold
        elif self.config.witnesses:
            witnesses = [
                WitnessEndpoint(w.url, CosignatureVerifier.parse(w.vkey)) for w in self.config.witnesses
            ]
            threshold = len(witnesses)
        else:
            return
        self.witnessing = CheckpointWitnessing(
            storage=self.log.storage, witnesses=witnesses, threshold=threshold, clock=self.clock
        )
        self.witnessing.attach(self.log)
        self._stack.callback(self.witnessing.close)

    def refresh(self) -> None:
        """Put in force what another process changed since: the policy set, the board's rules.

        ``rempart serve`` calls this every second; changes made through this
        deployment are in force at once.
        """
        self.policies.refresh()
        stamp = self.rules.stamp()
        if stamp != self._rules_stamp:
            self._rules_stamp = stamp
            self.rules.lay_over(self.records, self.config.catalog, self.config.regions)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

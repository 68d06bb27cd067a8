"""Migration: legacy data into the residency-pinned regional stores, verified, purged and attested.

Rooms inside (import from each module; this package imports nothing):

* :mod:`rempart.migrate.mapping`: the mapping file (TOML): source, subject column,
  home-region rule, source columns → catalog collections and fields;
* :mod:`rempart.migrate.source`: legacy sources (a PostgreSQL table or query, JSON Lines, CSV);
* :mod:`rempart.migrate.transform`: one legacy row → its records, or a quarantine reason;
  the canonical form of a record and its Merkle leaf;
* :mod:`rempart.migrate.progress`: runs, batches and quarantine in the control database;
* :mod:`rempart.migrate.runner`: the batched, resumable, crash-safe copy;
* :mod:`rempart.migrate.verify`: source and destination digests and Merkle roots;
* :mod:`rempart.migrate.purge`: deleting verified legacy rows from a PostgreSQL source;
* :mod:`rempart.migrate.attest`: the signed migration statement, recorded in the log;
* :mod:`rempart.migrate.plan`: a dry run over the source, writing nothing.
"""

__all__: list[str] = []

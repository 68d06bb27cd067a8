"""The record store: residency-pinned, encrypted, with custodian-held keys.

Rooms inside (import from each module; this package imports nothing, so that
``rempart.config`` can use the catalog without pulling in the whole store):

* :mod:`rempart.store.catalog`: collections, fields, categories, purpose codes;
* :mod:`rempart.store.keys`: the :class:`~rempart.store.keys.KeyCustody` port and the local keyring;
* :mod:`rempart.store.records`: record values, canonical field encoding, pages;
* :mod:`rempart.store.region`: one region's database of encrypted records and wrapped keys;
* :mod:`rempart.store.directory`: the subject directory in the control database;
* :mod:`rempart.store.egress`: the egress rules, exceptions port and daily budgets;
* :mod:`rempart.store.service`: :class:`~rempart.store.service.RecordService`, the
  one entry point: routing, residency, relocation, erasure, rotation, egress.
"""

__all__: list[str] = []

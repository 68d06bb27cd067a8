"""Rempart: a data-sovereignty agreement as software that enforces it and lets outsiders check it.

Use it over HTTP or in-process, with the same operations and answers::

    import rempart

    # a running server (`make run` prints the address and demo tokens)
    with rempart.Client("http://127.0.0.1:8080", token="rpt_…") as api:
        record = api.get_record("us-0001", "contact", "main", purpose="customer_support")

    # or embedded, on a data folder (no server)
    with rempart.open("data", principal="operator:alice") as r:
        print(r.whoami().org)

See :mod:`rempart.client` for every operation and a runnable example. The
names are loaded on first use, so ``import rempart.tlog`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rempart.client import Client, Embedded, open

__version__ = "0.1.0"

__all__ = ["Client", "Embedded", "__version__", "open"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "Embedded", "open"):
        from rempart import client

        return getattr(client, name)
    raise AttributeError(f"module 'rempart' has no attribute {name!r}")

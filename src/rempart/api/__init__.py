"""The HTTP API: a FastAPI app over one :class:`~rempart.deployment.Deployment`.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from rempart.config import default_config
>>> from rempart.deployment import Deployment
>>> d = Deployment.open(default_config(tempfile.mkdtemp()))
>>> with TestClient(create_app(d)) as http:
...     http.get("/health").json(), http.get("/me").json()["code"]
({'status': 'ok'}, 'unauthenticated')
>>> d.close()

``rempart serve`` runs it on uvicorn (see :mod:`rempart.cli.server`).
"""

from rempart.api._app import create_app

__all__ = ["create_app"]

"""tidal's HTTP server: live ingestion into topics, materialized views (pull, SQL, push),
metrics and health.

- :func:`serve` runs the server (``tidal serve``): the HTTP app on uvicorn and, when
  asked, a TCP line listener, over one log folder. Blocks until stopped.
- :func:`run_served` runs a flow and the server in one process (``flow.run(serve=True)``,
  ``tidal run --serve FILE.py``).
- :func:`create_app` builds the FastAPI app (over an open :class:`tidal.log.Log` for
  ingestion); use it to mount tidal in another ASGI server or to run it in a test.
- :class:`LineListener` turns the lines of TCP connections into rows of a topic.

Endpoints: ``POST /topics/{name}`` (a JSON array, NDJSON or CSV body; ``?key=FIELD``,
``?timestamp=FIELD``, ``Idempotency-Key``), ``GET /topics``, ``GET /topics/{name}``
(docs/ingestion.md); ``GET /views``, ``GET /views/{name}``, ``GET /views/{name}/{key}``,
``POST /query``, ``GET /views/{name}/changes`` (SSE), ``WS /views/{name}/ws``,
``GET /metrics``, ``GET /metrics.json``, ``GET /readyz``, ``GET /healthz``
(docs/serving.md).

>>> import tempfile, tidal.log
>>> from tidal.serve import create_app
>>> log = tidal.log.open(tempfile.mkdtemp())
>>> app = create_app(log, max_body_bytes=1 << 20)
>>> sorted(app.openapi()["paths"])  # doctest: +NORMALIZE_WHITESPACE
['/healthz', '/metrics', '/metrics.json', '/query', '/readyz', '/topics', '/topics/{name}',
 '/views', '/views/{name}', '/views/{name}/changes', '/views/{name}/{key}']
>>> log.close()
"""

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._lines import LineListener
from ._run import TOKEN_ENV, serve
from .runner import run_served

__all__ = ["DEFAULT_MAX_BODY_BYTES", "TOKEN_ENV", "LineListener", "create_app", "run_served",
           "serve"]

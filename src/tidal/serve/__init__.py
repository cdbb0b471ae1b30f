"""tidal's HTTP server: live ingestion into topics of the embedded log (more to come).

- :func:`serve` runs the server (``tidal serve``): the HTTP app on uvicorn and, when
  asked, a TCP line listener, over one log folder. Blocks until stopped.
- :func:`create_app` builds the FastAPI app over an open :class:`tidal.log.Log`; use it to
  mount tidal in another ASGI server or to run it in a test.
- :class:`LineListener` turns the lines of TCP connections into rows of a topic.

Endpoints: ``POST /topics/{name}`` (a JSON array, NDJSON or CSV body; ``?key=FIELD``,
``?timestamp=FIELD``, ``Idempotency-Key``), ``GET /topics``, ``GET /topics/{name}``,
``GET /healthz``. See docs/ingestion.md.

>>> import tempfile, tidal.log
>>> from tidal.serve import create_app
>>> log = tidal.log.open(tempfile.mkdtemp())
>>> app = create_app(log, max_body_bytes=1 << 20)
>>> {path: sorted(ops) for path, ops in app.openapi()["paths"].items()}
{'/healthz': ['get'], '/topics': ['get'], '/topics/{name}': ['get', 'post']}
>>> log.close()
"""

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._lines import LineListener
from ._run import TOKEN_ENV, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "TOKEN_ENV", "LineListener", "create_app", "serve"]

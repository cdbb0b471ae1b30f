"""Subcommands of the ``tidal`` command that work on the embedded log.

``topics_app`` is ``tidal topics create|list|describe|delete|produce|consume`` and
``deadletters_app`` is ``tidal deadletters list|show|replay``; ``tidal.cli`` mounts both.
Every command takes ``--log-dir`` (or ``TIDAL_LOG_DIR``), defaulting to ``./.tidal/log``.
"""

from tidal.commands.deadletters import deadletters_app
from tidal.commands.topics import topics_app

__all__ = ["deadletters_app", "topics_app"]

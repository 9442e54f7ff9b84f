"""How the library's log lines reach the person running a stage or a command.

Library modules log (``log = logging.getLogger(__name__)``) instead of printing, so code
that imports them decides what is shown. The entry points, ``errors.run_stage`` for the
stages and ``cli.main`` for ``imgpipe``, call ``configure`` so the user sees the lines the
prints used to give: the message alone, information on stdout (where the stage's and the
command's own output goes) and warnings on stderr. Progress bars (tqdm, on stderr) are
not logging and are untouched.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "imgpipe"


class ConsoleHandler(logging.Handler):
    """Each record's message on stdout, or stderr from WARNING up, flushed at once.

    The stream is looked up when a line is written, not when the handler is made, so a
    redirection made later (pytest's capture, ``contextlib.redirect_stdout``) receives it;
    the flush keeps the lines in order with a progress bar on the other stream and with
    a killed process's last words.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a closed pipe must not turn a log line into a crash
            self.handleError(record)


def configure() -> None:
    """Show the ``imgpipe`` loggers' INFO and above as plain lines (once per process).

    Only imgpipe's own loggers: MLflow, DVC and the other libraries keep their defaults.
    Records still propagate to the root logger, so a handler there (pytest's ``caplog``,
    an application's own) sees them too.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)

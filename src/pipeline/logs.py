"""Logging set-up for workflow scripts: a file per job plus stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def configure_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send ``pipeline`` logs to ``log_path`` and stderr; log uncaught errors too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )

    def log_uncaught(exc_type, exc, tb):
        logging.getLogger("pipeline").error("uncaught error", exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught

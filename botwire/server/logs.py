"""The server's logs: uvicorn's text lines, or with ``--log-format json`` one JSON object per
line (time, level, logger, message, the request id where there is one). Neither ever holds a
token or a value: requests are logged by method, path without its query (a search's words
travel there) and status (tokens travel in a header, values in the body)."""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from botwire.backends.changes import request_id


class NoQuery(logging.Filter):
    """Leave the query out of an access line's path: a search's words travel in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


class JSONFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args  # uvicorn's, with the HTTP version
            data.update(client=client, method=method, path=path, status=status)
        current = request_id.get()
        if current is not None:
            data["request_id"] = current
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def log_config(log_format: str) -> dict[str, Any]:
    """The logging configuration uvicorn applies (in each worker process)."""
    no_query = {"no_query": {"()": "botwire.server.logs.NoQuery"}}
    if log_format != "json":
        config = copy.deepcopy(LOGGING_CONFIG)
        config["filters"] = no_query
        config["handlers"]["access"]["filters"] = ["no_query"]
        return config
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": no_query,
        "formatters": {"json": {"()": "botwire.server.logs.JSONFormatter"}},
        "handlers": {"json": handler, "access": {**handler, "filters": ["no_query"]}},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "botwire": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }


def say(log_format: str, message: str) -> None:
    """One line of the server's own news at start (its store, its address), on stderr: as
    text, or as the JSON logs' lines."""
    if log_format == "json":
        record = logging.LogRecord("botwire.server", logging.INFO, __file__, 0, message, (), None)
        line = JSONFormatter().format(record)
    else:
        line = f"botwire serve: {message}"
    print(line, file=sys.stderr, flush=True)

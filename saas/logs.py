"""Structured JSON logs on stdout, each line carrying the request and tenant ids."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import g, has_request_context, request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class ContextFilter(logging.Filter):
    def filter(self, record):
        if has_request_context():
            record.request_id = g.get("request_id")
            record.tenant_id = g.get("tenant_id")
        else:
            record.request_id = getattr(record, "request_id", None)
            record.tenant_id = getattr(record, "tenant_id", None)
        return True


class JsonFormatter(logging.Formatter):
    EXTRA = ("method", "path", "status", "duration_ms", "remote_addr")

    def format(self, record):
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "tenant_id": getattr(record, "tenant_id", None),
        }
        for key in self.EXTRA:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(app):
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_saas", False)]
    handler._saas = True
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    # Alembic announces each of its plugins at INFO on every command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    app.logger.handlers = []
    app.logger.propagate = True

    access = logging.getLogger("saas.access")

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def log_and_tag(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if not access.isEnabledFor(logging.INFO):
            return response  # LOG_LEVEL above INFO: no access line, nothing to gather for it
        started = g.get("request_started")
        access.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
                "remote_addr": request.remote_addr,
            },
        )
        return response

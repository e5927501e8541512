"""What a model server's /invocations answers, and the bodies the containers' web frameworks
write on their own (the runtime turns a non-2xx answer into ModelError quoting the body)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str


# Flask/Werkzeug's page for an exception the application did not handle (the sagemaker-containers
# based containers: XGBoost, scikit-learn); the traceback goes to the server's log.
FLASK_500_BODY = (b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
                  b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable "
                  b"to complete your request. Either the server is overloaded or there is an error in the "
                  b"application.</p>\n")
FLASK_500 = Reply(500, FLASK_500_BODY, "text/html; charset=utf-8")

_CHARSET_TYPES = {"application/ecmascript", "application/javascript", "application/sql", "application/xml",
                  "application/xml-dtd", "application/xml-external-parsed-entity"}


def flask_mimetype(mimetype: str) -> str:
    """The Content-Type Flask sends for a response ``mimetype``: text types get "; charset=utf-8"."""
    if mimetype.startswith("text/") or mimetype in _CHARSET_TYPES or mimetype.endswith("+xml"):
        return f"{mimetype}; charset=utf-8"
    return mimetype

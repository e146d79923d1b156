"""Credentials kept out of the server's log: ``?token=`` (and ``access_token=``) values in URLs.

The NNI web UI proxy and the hub pages accept a token in the query string once (a browser cannot
send a header when it follows a link); tornado's access log and its warning and exception lines
print the request URI, so without this every such token would sit in the log, readable to whoever
reads the log. Every line that prints a request's URI prints :func:`redacted` of it instead.
"""

from __future__ import annotations

import re

#: ``token=`` or ``access_token=`` as a query parameter, any case; its value runs to the next ``&``.
_TOKEN = re.compile(r"(?i)([?&](?:access_)?token=)[^&#]*")
SECRET = "[secret]"


def redacted(uri: str) -> str:
    """``uri`` with the value of every token query parameter replaced by ``[secret]``."""
    return _TOKEN.sub(lambda m: m.group(1) + SECRET, uri) if "oken=" in uri.lower() else uri

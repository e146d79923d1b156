"""The HTTP server, whose accept loop backs off when the process runs out of file descriptors.

tornado's accept handler lets ``accept()``'s ``EMFILE`` escape to the event loop, which logs a
traceback and, the listening socket still being readable, calls the handler again at once: a
server at its descriptor limit wrote 480,000 tracebacks (277 MB) in 15 s and served no one. Here
the listening socket leaves the event loop for a pause that doubles on each failure (up to
:data:`MAX_PAUSE`); one warning says so, one line says when connections are accepted again and how
many attempts failed meanwhile. Connections wait in the kernel's backlog in the meantime and are
served once descriptors are free again.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable, Iterable

from tornado import httpserver
from tornado.ioloop import IOLoop

log = logging.getLogger("pai_hub.api")

#: ``accept()`` failures that mean "no resources now, later may work": back off, do not crash.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0
#: Connections accepted per readiness event at most (tornado's heuristic: the listen backlog).
BATCH = 128


class BackoffAcceptor:
    """Accepts connections on one listening socket for ``callback``; pauses when descriptors run out."""

    def __init__(self, sock: socket.socket, callback: Callable[[socket.socket, object], None]) -> None:
        self.sock = sock
        self.callback = callback
        self.loop = IOLoop.current()
        self.pause = FIRST_PAUSE
        self.refused = 0  # accept() failures in the current shortage
        self.since = 0.0
        self.watching = False
        self.removed = False
        self.timer: object | None = None
        self._watch()

    def _watch(self) -> None:
        self.timer = None
        if not self.removed and not self.watching:
            self.loop.add_handler(self.sock, self._ready, IOLoop.READ)
            self.watching = True

    def _ready(self, fd: object, events: int) -> None:
        for _ in range(BATCH):
            if self.removed:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return  # every waiting connection taken
            except ConnectionAbortedError:
                continue  # closed by its client while it waited
            except OSError as exc:
                if exc.errno not in EXHAUSTED:
                    raise
                self._back_off(exc)
                return
            if self.refused:
                log.warning("accepting connections again after %d refused attempts in %.1f s",
                            self.refused, time.monotonic() - self.since)
                self.refused, self.pause = 0, FIRST_PAUSE
            self.callback(connection, address)

    def _back_off(self, exc: OSError) -> None:
        if not self.refused:
            self.since = time.monotonic()
            log.warning("cannot accept connections: %s; new connections wait (retrying every %.2f-%.0f s) "
                        "until descriptors are free (raise the server's limit: ulimit -n / LimitNOFILE)",
                        exc.strerror or exc, FIRST_PAUSE, MAX_PAUSE)
        self.refused += 1
        self.loop.remove_handler(self.sock)
        self.watching = False
        self.timer = self.loop.call_later(self.pause, self._watch)
        self.pause = min(self.pause * 2, MAX_PAUSE)

    def remove(self) -> None:
        """Stop accepting (the server is stopping); the socket itself is closed by its owner."""
        self.removed = True
        if self.timer is not None:
            self.loop.remove_timeout(self.timer)
            self.timer = None
        if self.watching:
            self.loop.remove_handler(self.sock)
            self.watching = False


class PaiHTTPServer(httpserver.HTTPServer):
    """tornado's HTTP server with :class:`BackoffAcceptor` on every listening socket."""

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = BackoffAcceptor(sock, self._handle_connection).remove

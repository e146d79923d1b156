"""Engine, connection pragmas and migrations. ``open_store`` upgrades the schema to head and opens
the key that seals jobs' secrets (:mod:`.secretbox`): ``secrets.key`` beside a SQLite database, or
the path given for any other database."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..orchestrator.store_faults import check_writable
from .secretbox import KEY_FILE, SecretBox, open_box

log = logging.getLogger("pai_hub.store")
MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'pai.sqlite'}"


def _tune_sqlite(dbapi_conn, _record) -> None:
    """WAL lets readers run beside the one writer; NORMAL sync is durable across process crashes."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # no memory-mapped I/O: a write through a mapping of a file the disk cannot extend is a SIGBUS
    # that kills the server with nothing in its log; read()/write() fail with an error instead
    cur.execute("PRAGMA mmap_size=0")
    cur.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass
class Store:
    """The opened database: an engine, a session factory and the box sealing jobs' secrets (None:
    stored as they are, for an in-memory database or one opened without a key path)."""

    engine: Engine
    sessions: sessionmaker[Session]
    url: str
    box: SecretBox | None = None

    def close(self) -> None:
        self.engine.dispose()


def default_key_path(url: str) -> Path | None:
    """``secrets.key`` beside a SQLite database file (the data directory); None for other databases
    (their key path is given to :func:`open_store`) and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve().parent / KEY_FILE


def open_store(url: str, secrets_key: Path | None = None) -> Store:
    """Open (and migrate to head) the database at ``url``, with the secrets key at ``secrets_key``
    (default: :func:`default_key_path`; created when missing). A SQLite database that exists and
    cannot be written is refused here, naming the file and why (``StoreNotWritable``, an OSError)."""
    check_writable(url)
    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        # a database server that restarted leaves dead connections in the pool: test each before
        # use, so that the commit the loop retries after an outage gets a live one
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _tune_sqlite)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    store = Store(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), url=url)
    key = secrets_key or default_key_path(url)
    if key is not None:
        from .jobs import seal_plaintext_rows

        store.box = open_box(Path(key), lambda box: seal_plaintext_rows(store, box))
    elif not url.startswith("sqlite"):
        log.warning("no secrets key path given for %s: jobs' secrets are stored unencrypted "
                    "(pass secrets_key=<data_dir>/%s to open_store)", make_url(url).render_as_string(), KEY_FILE)
    return store

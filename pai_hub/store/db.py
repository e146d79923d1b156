"""Engine, connection pragmas and migrations. ``open_store`` upgrades the schema to head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

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
    cur.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass
class Store:
    """The opened database: an engine and a session factory."""

    engine: Engine
    sessions: sessionmaker[Session]
    url: str

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> Store:
    """Open (and migrate to head) the database at ``url``."""
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
    return Store(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), url=url)

"""The official examples, imported once, on a server's first start.

The job templates in ``examples/`` (package data copied from microsoft/pai ``marketplace-v2`` and
microsoft/openpaimarketplace, see ``examples/README.md``) become public, approved ``template``
items of the system author ``pai-examples`` in category ``OFFICIAL_EXAMPLE``, named after their
file. The import is recorded in the store (setting ``examples_imported``), so an example an admin
deletes stays deleted after a restart. A file the validator refuses is skipped and logged.
"""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from pathlib import Path

from .. import protocol
from .content import InvalidContent
from .repository import OFFICIAL, MarketError, MarketRepository, NoItem, Viewer

log = logging.getLogger("pai_hub.marketplace")

EXAMPLES_AUTHOR = "pai-examples"
SETTING = "examples_imported"
SOURCES = ("marketplace-v2", "openpaimarketplace")
KEYWORDS = ("pytorch", "tensorflow", "keras", "caffe2", "caffe", "chainer", "mxnet", "horovod", "sklearn",
            "rocm", "ddp", "apex", "serving", "dataset", "training", "inference", "gpu_sharing")


def example_files() -> list[tuple[str, Path]]:
    """(source, path) of every shipped example, in a stable order."""
    root = Path(str(files("pai_hub.marketplace").joinpath("examples")))
    return [(source, path) for source in SOURCES for path in sorted((root / source).glob("*.yaml"))]


def _summary(description: str, fallback: str) -> str:
    for line in description.splitlines():
        line = re.sub(r"^#+\s*", "", line).strip()
        if line:
            line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)
            return line if len(line) <= 160 else line[:157].rstrip() + "..."
    return fallback


def import_examples(repo: MarketRepository, force: bool = False) -> int:
    """Import the examples unless done before (``force``: again, adding new versions only where a
    file changed). Returns how many items were written."""
    if repo.setting(SETTING) and not force:
        return 0
    repo.ensure_category(OFFICIAL, "Examples shipped with PAI Hub (from Microsoft OpenPAI)")
    system = Viewer(EXAMPLES_AUTHOR, admin=True)
    written = 0
    for source, path in example_files():
        name = path.stem
        text = path.read_text(encoding="utf-8")
        try:
            if repo.get(system, name)["author"] != EXAMPLES_AUTHOR:
                log.warning("marketplace example %s skipped: a user's item has that name", name)
                continue
        except NoItem:
            pass
        try:
            doc = protocol.parse(text)
            description = str(doc.get("description") or "")
            tags = [source, *(k for k in KEYWORDS if k in name.lower().replace("-", "_"))]
            _, created = repo.publish(system, name=name, type="template", content=text, visibility="public",
                                      summary=_summary(description, name), description=description,
                                      tags=tags, categories=[OFFICIAL], source="pai")
            written += int(created)
        except (protocol.InvalidProtocol, InvalidContent, MarketError) as exc:
            log.warning("marketplace example %s/%s skipped: %s", source, path.name, exc)
    repo.set_setting(SETTING, str(written))
    log.info("marketplace: %d official examples imported", written)
    return written

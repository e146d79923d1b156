"""``pai market``: list, show, publish, use (plus star, unstar, delete) over the REST API.

``pai market use ITEM`` turns a template item into a job: it applies ``--param KEY=VALUE``, names
the job ``<template name>_<8 hex>`` unless ``--name`` is given, records the template in
``extras.marketplace``, submits it and counts one use of the item.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pai_hub import protocol

from ..console import print_table
from ..errors import PaiError
from ..templates import ITEM_TYPES, REF_KEY, TemplateError, template_job
from .common import client as _client
from .common import command, group, print_json, wait_and_report


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        items = c.market_items(type=args.type, tag=args.tag, category=args.category, keyword=args.keyword,
                               author=args.author, starred="true" if args.starred else None, sort=args.sort)
    if args.json:
        return print_json(items)
    rows = [("NAME", "TYPE", "VERSION", "AUTHOR", "VISIBILITY", "STARS", "USES", "SUMMARY")]
    rows += [(i["name"], i["type"], str(i["version"]), i["author"], i["visibility"]
              + ("" if i["status"] == "approved" or i["visibility"] != "public" else f" ({i['status']})"),
              str(i["starNumber"]), str(i["useNumber"]), (i["summary"] or "")[:60]) for i in items]
    print_table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as c:
        item = c.market_item(args.item, args.version)
    if args.json:
        return print_json(item)
    if args.content:
        print(item["protocol"], end="" if item["protocol"].endswith("\n") else "\n")
        return 0
    groups = f" ({', '.join(item['groupList'])})" if item["visibility"] == "groups" else ""
    print(f"{item['name']}@{item['version']}  {item['type']} by {item['author']}")
    print(f"  visibility: {item['visibility']}{groups}   status: {item['status']}")
    print(f"  versions: {', '.join(map(str, item['versions']))} (latest you can see: {item['latestVersion']})")
    print(f"  tags: {', '.join(item['tags']) or '-'}   categories: {', '.join(item['categories']) or '-'}")
    print(f"  stars: {item['starNumber']}{' (starred)' if item['starred'] else ''}   uses: {item['useNumber']}")
    if item["summary"]:
        print(f"  summary: {item['summary']}")
    if item["type"] != "template":
        print(f"  reference from a job: {{name: ..., type: {item['type']}, {REF_KEY}: {item['name']}@{item['version']}}}")
    print("---")
    print(item["protocol"], end="" if item["protocol"].endswith("\n") else "\n")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    name = args.name
    if name is None:
        try:
            doc = protocol.parse(text)
        except protocol.InvalidProtocol as exc:
            raise PaiError(0, "InvalidProtocolError", str(exc)) from None
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            raise PaiError(0, "InvalidParametersError", "--name: required (the file has no name)")
    description = Path(args.description_file).read_text() if args.description_file else None
    visibility = args.visibility or ("groups" if args.group else None)  # None: private, or as it was
    with _client(args) as c:
        out = c.market_publish(text, type=args.type, name=name, visibility=visibility, groups=args.group,
                               tags=args.tag, categories=args.category, summary=args.summary,
                               description=description)
    verb = "published" if out["created"] else "unchanged:"
    status = f" (status {out['status']})" if out["status"] != "approved" else ""
    print(f"{verb} {out['name']}@{out['version']}{status}")
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    with _client(args) as c:
        item = c.market_item(args.item)
        try:
            _name, text = template_job(item, args.param, args.name)
        except TemplateError as exc:
            raise PaiError(0, "InvalidParametersError", str(exc)) from None
        if args.print:
            print(text, end="")
            return 0
        framework = c.submit_job(text)
        try:
            c.market_use(item["name"])
        except PaiError:
            pass  # the job is submitted; the count is not worth a failure
        print(f"submitted {framework} from {item['name']}@{item['version']}")
        return wait_and_report(c, framework, args.timeout) if args.wait else 0


def cmd_star(args: argparse.Namespace) -> int:
    with _client(args) as c:
        out = c.market_star(args.item, args.command_star)
    print(f"{out['item']}: {'starred' if out['starred'] else 'not starred'} ({out['starNumber']} stars)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as c:
        out = c.market_delete(args.item)
    print(f"deleted {out['name']} (every version)")
    return 0


def add_market(sub: Any) -> None:
    """Add ``pai market ...`` to the ``pai`` parser's subcommands."""
    m = group(sub, "market", "the marketplace: shared job templates, data, scripts, images")
    ml = command(m, "list", cmd_list, json=True, help="items you can see, with filters")
    ml.add_argument("--type", choices=[*ITEM_TYPES, "all"])
    ml.add_argument("--tag", action="append", help="must carry this tag (repeatable: all)")
    ml.add_argument("--category", action="append", help="must be in this category (repeatable: all)")
    ml.add_argument("--keyword", help="substring of name, author, summary or a tag")
    ml.add_argument("--author")
    ml.add_argument("--starred", action="store_true", help="only items you starred")
    ml.add_argument("--sort", default="name", choices=["name", "updated", "created", "stars", "uses"])
    ms = command(m, "show", cmd_show, "item", json=True, help="an item and its content (ITEM or ITEM@VERSION)")
    ms.add_argument("--version", type=int)
    ms.add_argument("--content", action="store_true", help="print only the stored YAML")
    mp = m.add_parser("publish", help="publish FILE as an item, or as a new version of your item")
    mp.add_argument("file", help="a job template, or one prerequisite (YAML); - reads stdin")
    mp.add_argument("--type", default="template", choices=ITEM_TYPES)
    mp.add_argument("--name", help="item name (default: the file's name field)")
    mp.add_argument("--visibility", choices=["private", "groups", "public"],
                    help="default: groups when --group is given, else private for a new item and "
                    "unchanged for a new version")
    mp.add_argument("--group", action="append", help="a group that may see the item (repeatable)")
    mp.add_argument("--tag", action="append")
    mp.add_argument("--category", action="append")
    mp.add_argument("--summary")
    mp.add_argument("--description-file", help="a markdown file with the description")
    mp.set_defaults(func=cmd_publish)
    mu = command(m, "use", cmd_use, "item", help="submit a template item as a job (ITEM or ITEM@VERSION)")
    mu.add_argument("--param", action="append", metavar="KEY=VALUE")
    mu.add_argument("--name", help="job name (default: <template name>_<8 hex>)")
    mu.add_argument("--wait", action="store_true")
    mu.add_argument("--timeout", type=float, default=3600)
    mu.add_argument("--print", action="store_true", help="print the job instead of submitting it")
    for name, on in (("star", True), ("unstar", False)):
        command(m, name, cmd_star, "item").set_defaults(command_star=on)
    command(m, "delete", cmd_delete, "item", help="delete your item (every version; submitted jobs keep their copy)")

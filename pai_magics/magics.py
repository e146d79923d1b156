"""``%pai`` and ``%%pai``: PAI jobs from a notebook (docs/notebook.md).

Cell magics: ``%%pai submit [options]`` runs the cell's code as a job; ``%%pai yaml`` submits the
cell as protocol YAML. Line magics: ``%pai jobs | status | logs | stop | wait | debug | release |
vc | sku | whoami | help``. A mistake is one line (``UsageError``); a refusal of the server is one
line on stderr (``pai: <code>: <message>``) — never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any
from urllib.parse import urlparse

import yaml
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from pai_client.client import PaiClient, PaiError
from pai_client.console import job_rows, parse_task, print_table, write_logs
from pai_client.experiments import load_request
from pai_client.templates import TemplateError, template_job

from . import jobspec

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _next_args(o: argparse.Namespace, offset: int) -> str:
    """The ``%pai jobs`` arguments that show the page at ``offset`` with the same filters."""
    args = [f"--{k} {shlex.quote(v)}" for k, v in (("state", o.state), ("vc", o.vc), ("keyword", o.keyword)) if v]
    args += ["--all"] if o.all else []
    args += [f"--limit {o.limit}"] if o.limit != 100 else []
    return " ".join([*args, f"--offset {offset}"])


class _Done(Exception):
    """``--help`` was printed."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake as one ``UsageError`` line instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message, file=sys.stderr)
        raise _Done()


def _parsers() -> dict[str, _Parser]:
    p: dict[str, _Parser] = {}

    def new(name: str, help_: str, cell: bool = False) -> _Parser:
        prog = f"%%pai {name}" if cell else f"%pai {name}"
        p[name] = _Parser(prog=prog, description=help_, add_help=True)
        return p[name]

    s = new("submit", "Run the cell's code as a PAI job (a Python script in each task).", cell=True)
    s.add_argument("--name", default="", help="job name (default nb-<time>-<hex>)")
    s.add_argument("--vc", help="virtual cluster (default: the server's default)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--sku", help="SKU type of every task (HiveD skuType)")
    g.add_argument("--gpu", type=int, default=0, metavar="N", help="GPUs per task")
    s.add_argument("--cpu", type=int, default=1, metavar="N", help="CPUs per task")
    s.add_argument("--memory", type=int, default=1024, metavar="MB", help="memory per task (MB)")
    s.add_argument("--instances", type=int, default=1, metavar="N", help="tasks, scheduled as one gang")
    s.add_argument("--image", default="python:3.11", help="docker image (kubernetes backend)")
    s.add_argument("--prereq", action="extend", nargs="+", default=[], metavar="NAME",
                   help="marketplace items (data, script or docker image), NAME or NAME@VERSION")
    s.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="a parameter, exported to the code as environment variable K")
    s.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="a working file to carry into each task's directory")
    s.add_argument("--python", help="interpreter of the tasks (default: this kernel's on a local backend, "
                   "else python3)")
    s.add_argument("--debug-minutes", type=float, default=0.0, metavar="M",
                   help="keep a failed task M minutes for %%pai debug")
    s.add_argument("--retries", type=int, default=0, metavar="N", help="jobRetryCount")
    s.add_argument("--wait", action="store_true", help="block until the job ends")
    s.add_argument("--timeout", type=float, default=3600.0, help="with --wait: seconds (default 3600)")
    s.add_argument("--dry-run", action="store_true", help="print the job's YAML; do not submit")
    s.add_argument("--array", metavar="INDICES", help="a job array: one job per index (0-99, 0-99:2, 1,3,5-7), "
                   "named NAME-INDEX, submitted in one request; the cell reads os.environ['PAI_ARRAY_INDEX']")

    y = new("yaml", "Submit the cell as OpenPAI protocol v2 YAML.", cell=True)
    y.add_argument("--param", action="append", default=[], metavar="K=V", help="set parameters.K")
    y.add_argument("--wait", action="store_true")
    y.add_argument("--timeout", type=float, default=3600.0)
    y.add_argument("--array", metavar="INDICES", help="a job array: one job per index, named NAME-INDEX")

    j = new("jobs", "Your jobs, as a table with filters.")
    j.add_argument("--state", default="", choices=[s for s in ("WAITING", "RUNNING", "STOPPING", "STOPPED",
                                                               "SUCCEEDED", "FAILED")] + [""],
                   type=str.upper)
    j.add_argument("--vc", default="")
    j.add_argument("--keyword", default="")
    j.add_argument("--all", action="store_true", help="(admins) every user's jobs")
    j.add_argument("--limit", type=int, default=100, help="jobs per page (default 100)")
    pg = j.add_mutually_exclusive_group()
    pg.add_argument("--offset", type=int, default=0, help="start at this job (newest first; 0 = the first)")
    pg.add_argument("--page", type=int, help="page N (1 = the newest LIMIT jobs)")
    j.add_argument("--text", action="store_true", help="print a text table instead of a widget")

    for name, text in (("status", "A live view of a job."), ("stop", "Stop a job."),
                       ("release", "End a debug reservation early (its GPUs go back)."),
                       ("wait", "Block until a job ends; prints its final state.")):
        q = new(name, text)
        q.add_argument("name", help="NAME (yours) or USER~NAME")
        if name == "status":
            q.add_argument("--text", action="store_true", help="print instead of a widget")
        if name == "wait":
            q.add_argument("--timeout", type=float, default=3600.0)

    lg = new("logs", "A task's log.")
    lg.add_argument("name")
    lg.add_argument("-f", "--follow", action="store_true", help="print as it is written, until the job ends")
    lg.add_argument("--task", help="ROLE/INDEX (default: the first task)")
    lg.add_argument("--log", default="all", choices=["all", "stdout", "stderr", "runtime.log"])

    d = new("debug", "A shell in a task kept for debugging (or a running task), as a widget.")
    d.add_argument("name")
    d.add_argument("--task", help="ROLE/INDEX (default: the task kept for debugging)")

    x = new("nni", "NNI experiments whose trials are PAI jobs: create, list, show (a live trials view), stop, resume.")
    x.add_argument("action", choices=["create", "list", "show", "stop", "resume"])
    x.add_argument("target", nargs="?", help="create: the experiment's YAML file; show/stop/resume: its id")
    x.add_argument("--wait", action="store_true", help="create/show: wait until the experiment ends")
    x.add_argument("--all", action="store_true", help="list: everyone's (admins)")

    m = new("market", "The marketplace: list, show or use (submit a template) items.")
    m.add_argument("action", choices=["list", "show", "use"])
    m.add_argument("item", nargs="?", help="ITEM or ITEM@VERSION (show, use)")
    m.add_argument("--type", choices=["template", "data", "script", "dockerimage"])
    m.add_argument("--tag")
    m.add_argument("--keyword")
    m.add_argument("--param", action="append", metavar="KEY=VALUE", help="use: set a template parameter")
    m.add_argument("--name", help="use: the job's name (default: the item's, made unique)")
    m.add_argument("--wait", action="store_true", help="use: wait until the job ends")

    new("vc", "Virtual clusters: your share, what is used, SKUs.")
    sk = new("sku", "SKU types (cpu, memory, gpu per SKU).")
    sk.add_argument("--vc", help="only this VC's SKUs")
    new("whoami", "Who the client is, and where PAI is.")
    return p


def _task(value: str | None) -> tuple[str | None, int]:
    try:
        return parse_task(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@magics_class
class PaiMagics(Magics):
    """``%pai`` / ``%%pai``. ``url`` / ``token`` default to the client's (PAI_URL, PAI_TOKEN or the hub)."""

    def __init__(self, shell: Any = None, url: str | None = None, token: str | None = None) -> None:
        super().__init__(shell)
        self.url, self.token = url, token
        self.parsers = _parsers()

    def client(self) -> PaiClient:
        return PaiClient(self.url, self.token)

    @line_cell_magic
    def pai(self, line: str, cell: str | None = None) -> Any:
        """PAI jobs from the notebook: ``%pai help`` lists the commands."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%pai: {exc}") from None
        if not words or words[0] in ("help", "-h", "--help"):
            self._help()
            return None
        command, args = words[0], words[1:]
        cell_commands = ("submit", "yaml")
        if command not in self.parsers:
            raise UsageError(f"%pai: unknown command {command!r}; one of: {', '.join(sorted(self.parsers))}")
        if (command in cell_commands) != (cell is not None):
            if cell is None:
                raise UsageError(f"%%pai {command} is a cell magic: put it on the first line of a cell, "
                                 "with the code below")
            raise UsageError(f"%pai {command} is a line magic (%pai {command} ...), not %%pai")
        try:
            opts = self.parsers[command].parse_args(args)
        except _Done:
            return None
        try:
            return getattr(self, "_" + command)(opts, cell)
        except PaiError as exc:
            print(f"pai: {exc.code}: {exc.message}", file=sys.stderr)
        except jobspec.SpecError as exc:
            raise UsageError(f"%%pai {command}: {exc}") from None
        except KeyboardInterrupt:
            print("pai: interrupted", file=sys.stderr)
        return None

    def _help(self) -> None:
        print("PAI magics (docs/notebook.md); `%pai COMMAND --help` for options:")
        for parser in self.parsers.values():
            print(f"  {parser.prog:<14} {parser.description}")

    # -- submitting ---------------------------------------------------------------------------------
    def _python(self, c: PaiClient) -> str:
        """This kernel's interpreter when tasks run on this machine (the local backend), else python3."""
        try:
            local = c.info().get("backend") == "local"
        except PaiError:
            local = False
        host = urlparse(c.url).hostname or ""
        if local and (host in LOCAL_HOSTS or host == os.uname().nodename) and os.path.exists(sys.executable):
            return sys.executable
        return "python3"

    def _prereqs(self, c: PaiClient, refs: list[str]) -> list[dict[str, Any]]:
        out = []
        for ref in refs:
            item = c.market_item(ref)
            name = "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in ref.partition("@")[0])
            out.append({"name": name, "marketplace": ref, "type": item.get("type")})
        return out

    def _submit(self, o: argparse.Namespace, cell: str) -> Any:
        with self.client() as c:
            spec = jobspec.CellJob(
                code=cell, name=o.name, vc=o.vc, sku=o.sku, gpu=o.gpu, cpu=o.cpu, memory_mb=o.memory,
                instances=o.instances, image=o.image, params=jobspec.parse_params(o.param), files=o.file,
                debug_minutes=o.debug_minutes, retries=o.retries, cwd=os.getcwd(),
                python=o.python or (self._python(c) if not o.dry_run else sys.executable),
                prereqs=self._prereqs(c, o.prereq) if o.prereq else [])
            doc = jobspec.build(spec)
            if o.dry_run:
                print(yaml.safe_dump(doc, sort_keys=False), end="")
                return None
            if o.array is not None:
                return self._submit_array(c, o, doc)
            framework = c.submit_job(doc)
            for ref in o.prereq:
                try:
                    c.market_use(ref)
                except PaiError:
                    pass
        print(f"submitted {framework}" + (f" ({o.instances} tasks, one gang)" if o.instances > 1 else ""))
        return self._view(framework, o.wait, o.timeout)

    def _yaml(self, o: argparse.Namespace, cell: str) -> Any:
        try:
            doc = yaml.safe_load(cell)
        except yaml.YAMLError as exc:
            raise UsageError(f"%%pai yaml: the cell is not YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict):
            raise UsageError("%%pai yaml: the cell is not a YAML mapping (a job protocol)")
        text = cell
        if o.param:
            values = doc.setdefault("parameters", {}) or {}
            for key, value in jobspec.parse_params(o.param).items():
                values[key] = yaml.safe_load(value) if value else ""
            doc["parameters"] = values
            text = yaml.safe_dump(doc, sort_keys=False)
        with self.client() as c:
            if o.array is not None:
                return self._submit_array(c, o, text)
            framework = c.submit_job(text)
        print(f"submitted {framework}")
        return self._view(framework, o.wait, o.timeout)

    def _submit_array(self, c: PaiClient, o: argparse.Namespace, job: Any) -> None:
        """``--array``: every element in one request (stored all or none), as ``pai job submit --array``."""
        if o.wait:
            raise UsageError("--wait follows one job; follow an array with %pai jobs")
        r = c.submit_many(job, array=o.array)
        names = r["names"]
        print(f"submitted {r['count']} jobs ({names[0] if len(names) == 1 else f'{names[0]} ... {names[-1]}'})")

    def _view(self, framework: str, wait: bool, timeout: float) -> Any:
        from .widgets import JobView

        view = JobView(framework, self.url, self.token)
        if not wait:
            return view
        from IPython.display import display

        display(view)
        snap = view.wait(timeout)
        if snap is None or not snap.ended:
            print(f"pai: {framework} still {snap.state if snap else 'unknown'} after {timeout:g}s", file=sys.stderr)
        else:
            print(f"{framework}: {snap.state}")
        return None

    # -- looking at jobs ------------------------------------------------------------------------------
    def _jobs(self, o: argparse.Namespace, _cell: Any) -> Any:
        if o.limit < 1 or o.offset < 0 or (o.page is not None and o.page < 1):
            raise UsageError("%pai jobs: --limit and --page start at 1, --offset at 0")
        offset = (o.page - 1) * o.limit if o.page is not None else o.offset
        if not o.text:
            from .widgets import JobsTable

            return JobsTable(self.url, self.token, state=o.state, vc=o.vc, keyword=o.keyword, all_users=o.all,
                             limit=o.limit, offset=offset)
        with self.client() as c:
            me = None if o.all else c.whoami()["username"]
            page = c.job_page(offset, o.limit, state=o.state or None, vc=o.vc or None, keyword=o.keyword or None,
                              username=me)
        print_table(job_rows(page.jobs))
        print(f"jobs {page.label}" + (f"; next page: %pai jobs --text {_next_args(o, page.next_offset)}"
                                       if page.next_offset is not None else ""))
        return None

    def _status(self, o: argparse.Namespace, _cell: Any) -> Any:
        with self.client() as c:
            framework = c.framework(o.name)
            snap = c.snapshot(o.name)  # a 404 is one line, before any widget
        if not o.text:
            return self._view(framework, False, 0)
        print(f"{framework}: {snap.state}  (vc {snap.virtual_cluster}, retries {snap.retries})")
        if snap.waiting_reason:
            print(f"  waiting: {snap.waiting_reason}")
        if snap.exit_spec:
            print(f"  failure: {snap.exit_spec.phrase} ({snap.exit_spec.type}): {snap.exit_spec.reason}")
            for step in snap.exit_spec.solution:
                print(f"  fix: {step}")
        for t in snap.tasks:
            print(f"  {t.role}/{t.index}: {t.state}{' ' + t.sub_state if t.sub_state else ''}  "
                  f"node {t.node or '-'}  gpus {t.gpus or '-'}")
        return None

    def _logs(self, o: argparse.Namespace, _cell: Any) -> None:
        role, index = _task(o.task)
        with self.client() as c:
            write_logs(c, o.name, role, index, o.log, follow=o.follow)

    def _stop(self, o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            c.stop(o.name)
            print(f"stopping {c.framework(o.name)}")

    def _release(self, o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            c.release(o.name)
            print(f"released the debug reservation of {c.framework(o.name)}")

    def _wait(self, o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            detail = c.wait(o.name, timeout=o.timeout)
            print(f"{c.framework(o.name)}: {detail['jobStatus']['state']}")

    def _debug(self, o: argparse.Namespace, _cell: Any) -> Any:
        from .widgets import TerminalView

        role, index = _task(o.task)
        with self.client() as c:
            if role is None:
                role, index = c.debug_task(o.name)
            framework = c.framework(o.name)
            url, headers = c.terminal_url(o.name, role, index), c.auth_headers()
        term = TerminalView(url, headers, title=f"{framework} {role}/{index}")
        if term.error:
            term.close()
            print(f"pai: {term.error}", file=sys.stderr)
            return None
        return term

    # -- the cluster ----------------------------------------------------------------------------------
    def _nni(self, o: argparse.Namespace, _cell: Any) -> Any:
        from .widgets import TrialsView

        with self.client() as c:
            if o.action == "list":
                rows = [("ID", "STATE", "NAME", "TRIALS", "BEST")]
                for e in c.experiments(all=o.all):
                    counts = ", ".join(f"{k} {v}" for k, v in sorted((e.get("trialCounts") or {}).items()))
                    rows.append((e["id"], e["state"], e.get("name", ""), counts or "-",
                                 "-" if e.get("bestFinal") is None else f"{e['bestFinal']:.6g}"))
                print_table(rows)
                return None
            if not o.target:
                raise UsageError(f"%pai nni {o.action}: which {'file' if o.action == 'create' else 'experiment'}?")
            if o.action == "create":
                try:
                    body = load_request(o.target)
                except OSError as exc:
                    raise UsageError(f"%pai nni create: {exc}") from None
                experiment_id = c.create_experiment(body)["id"]
                print(f"created experiment {experiment_id}")
            elif o.action in ("stop", "resume"):
                e = c.experiment_execution(o.target, o.action.upper())
                print(f"experiment {e['id']}: {e['state']}")
                return None
            else:
                experiment_id = o.target
        view = TrialsView(experiment_id, self.url, self.token)
        if o.wait:
            from IPython.display import display

            display(view)
            e = view.wait()
            print(f"experiment {experiment_id}: {e['state'] if e else 'unknown'}")
        return view

    def _market(self, o: argparse.Namespace, _cell: Any) -> Any:
        with self.client() as c:
            if o.action == "list":
                items = c.market_items(type=o.type, tag=o.tag, keyword=o.keyword)
                rows = [("ITEM", "TYPE", "VERSION", "AUTHOR", "VISIBILITY", "SUMMARY")]
                rows += [(i["name"], i["type"], str(i.get("version", "")), i.get("author", ""),
                          i.get("visibility", ""), (i.get("summary") or "")[:60]) for i in items]
                print_table(rows)
                return None
            if not o.item:
                raise UsageError(f"%pai market {o.action}: which item? e.g. %pai market {o.action} pytorch-mnist")
            item = c.market_item(o.item)
            if o.action == "show":
                print(f"{item['name']}@{item['version']} ({item['type']}, {item.get('visibility', '')}) by "
                      f"{item.get('author', '')}\n{item.get('summary') or ''}\n\n{item.get('protocol', '')}")
                return None
            try:
                _name, text = template_job(item, o.param, o.name)
            except TemplateError as exc:
                raise UsageError(f"%pai market use: {exc}") from None
            framework = c.submit_job(text)
            try:
                c.market_use(item["name"])
            except PaiError:
                pass  # the job is submitted; the use count is not worth a failure
            print(f"submitted {framework} from {item['name']}@{item['version']}")
        return self._view(framework, o.wait, 3600.0)

    def _vc(self, _o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            vcs = c.virtual_clusters()
        rows = [("VC", "CAPACITY%", "USED%", "GPUS USED/GUARANTEED", "RUNNING", "QUEUED", "SKUS")]
        for name, v in sorted(vcs.items()):
            used = (v.get("resourcesUsed") or {}).get("GPUs", "-")
            guaranteed = (v.get("resourcesGuaranteed") or {}).get("GPUs", "-")
            skus = ", ".join(f"{k} {s.get('used', 0)}/{s.get('capacity', 0)}" for k, s in (v.get("skus") or {}).items())
            rows.append((name, f"{v.get('capacity', 0):g}", f"{v.get('usedCapacity', 0):g}", f"{used:g}/{guaranteed:g}" if isinstance(used, (int, float)) and isinstance(guaranteed, (int, float)) else f"{used}/{guaranteed}",
                         str(v.get("running", "-")), str(v.get("queue", "-")), skus or "-"))
        print_table(rows)

    def _sku(self, o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            skus = c.sku_types(o.vc)
        rows = [("SKU", "GPU", "CPU", "MEMORY")]
        rows += [(name, str(s.get("gpu", "-")), str(s.get("cpu", "-")), str(s.get("memory", "-")))
                 for name, s in sorted(skus.items())]
        print_table(rows)

    def _whoami(self, _o: argparse.Namespace, _cell: Any) -> None:
        with self.client() as c:
            me = c.whoami()
            print(f"{me['username']}{' (admin)' if me.get('admin') else ''} at {c.url}")


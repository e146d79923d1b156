"""ipywidgets views of PAI jobs: a live job view, a jobs table with filters, a debug terminal.

Every live widget is fed by a daemon thread running its own asyncio loop with an
:class:`~pai_client.client.AsyncPaiClient`: the job view follows the job's server-sent events
(falling back to polling if the stream breaks) and the terminal speaks terminado's JSON messages
over PAI's websocket. A thread rather than a task on the kernel's loop, so that the view keeps
moving while a cell blocks (``%%pai submit --wait``, ``time.sleep``); ipykernel sends comm messages
from any thread. Trait changes are ordinary widget state, so the front end and the kernel see the
same values (``view.state.value`` is the job's state).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from typing import Any

import ipywidgets as widgets

from pai_client import terminal
from pai_client.client import AsyncPaiClient, PaiClient, PaiError
from pai_client.models import END_STATES, JobPage, JobSnapshot

STATE_COLORS = {"WAITING": "#b58900", "RUNNING": "#268bd2", "STOPPING": "#cb4b16", "STOPPED": "#6c71c4",
                "SUCCEEDED": "#2aa198", "FAILED": "#dc322f", "UNKNOWN": "#657b83"}
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\r(?!\n)")

_last: list[JobView] = []


def last_view() -> JobView | None:
    """The job view made last by ``%%pai submit`` / ``%pai status`` (also after ``--wait``)."""
    return _last[-1] if _last else None


def _badge(state: str) -> str:
    color = STATE_COLORS.get(state, "#657b83")
    return (f'<span style="background:{color};color:white;padding:1px 6px;border-radius:3px">'
            f"{html.escape(state)}</span>")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left;padding:0 8px'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:0 8px'>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _LoopThread:
    """A daemon thread with its own asyncio loop; ``run(coro)`` schedules on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)


class JobView(widgets.VBox):
    """A job, live: state, tasks (node, GPUs, exit code, debugging), GPUs held, waiting reason,
    failure category and resolution (``appExitSpec``), and the tail of the first task's log.

    The children are ordinary widgets: ``state`` (Label, the job's state), ``tasks`` (HTML table),
    ``gpus`` (Label), ``waiting`` (Label), ``failure`` (HTML), ``log_tail`` (Textarea), ``stop_button``,
    ``release_button``. ``snapshot`` is the last :class:`JobSnapshot`, ``states_seen`` every state
    the view showed, in order; ``wait()`` blocks until the job has ended.
    """

    def __init__(self, framework: str, url: str | None = None, token: str | None = None, *,
                 log_lines: int = 20, poll_interval: float = 1.0, start: bool = True, **kwargs: Any) -> None:
        self.framework = framework
        self._url, self._token = url, token
        self.log_lines = log_lines
        self.poll_interval = poll_interval
        self.snapshot: JobSnapshot | None = None
        self.states_seen: list[str] = []
        self.events_seen = 0
        self.error: str | None = None
        self.done = threading.Event()
        self._closing = False
        self._thread: _LoopThread | None = None
        self.header = widgets.HTML(f"<b>{html.escape(framework)}</b>")
        self.state = widgets.Label("…", description="state")
        self.gpus = widgets.Label("", description="GPUs")
        self.waiting = widgets.Label("", description="waiting")
        self.tasks = widgets.HTML("")
        self.failure = widgets.HTML("")
        self.log_tail = widgets.Textarea("", disabled=True, rows=8, layout=widgets.Layout(width="100%"))
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop")
        self.release_button = widgets.Button(description="Release debug", icon="unlock",
                                             layout=widgets.Layout(display="none"))
        self.stop_button.on_click(lambda _b: self._action("stop"))
        self.release_button.on_click(lambda _b: self._action("release"))
        super().__init__([self.header, widgets.HBox([self.state, self.stop_button, self.release_button]),
                          self.gpus, self.waiting, self.tasks, self.failure, self.log_tail], **kwargs)
        _last.append(self)
        del _last[:-20]
        if start:
            self.start()

    # -- updating -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = _LoopThread(f"pai-job-view-{self.framework}")
            self._thread.run(self._follow())

    def wait(self, timeout: float | None = None) -> JobSnapshot | None:
        """Block until the job has ended (and the view shows it); returns the last snapshot."""
        self.done.wait(timeout)
        return self.snapshot

    def close(self) -> None:
        self._closing = True  # the updater sees it within a second and ends
        super().close()

    async def _follow(self) -> None:
        try:
            async with AsyncPaiClient(self._url, self._token) as c:
                changed = asyncio.Event()
                stream_over = False

                async def listen() -> None:
                    nonlocal stream_over
                    try:
                        async for ev in c.event_stream(self.framework):
                            self.events_seen += 1
                            changed.set()
                            if ev.event == "end":
                                break
                    except PaiError:
                        pass  # polling carries on
                    finally:
                        stream_over = True
                        changed.set()

                listener = asyncio.create_task(listen())
                try:
                    while not self._closing:
                        await self._refresh(c)
                        if self.snapshot is not None and self.snapshot.ended:
                            break
                        try:
                            await asyncio.wait_for(changed.wait(), self.poll_interval if not stream_over else 0.5)
                        except asyncio.TimeoutError:
                            pass
                        changed.clear()
                finally:
                    listener.cancel()
        except Exception as exc:  # the view shows it; the kernel goes on
            self.error = f"{type(exc).__name__}: {exc}"
            self.waiting.value = f"view stopped: {self.error}"
        finally:
            self.done.set()
            if self._thread is not None:
                self._thread.stop()

    async def _refresh(self, c: AsyncPaiClient) -> None:
        try:
            detail = await c.job(self.framework)
        except PaiError as exc:
            self.error = exc.message
            self.waiting.value = f"{exc.code}: {exc.message}"
            if exc.status == 404:
                self._closing = True
            return
        snap = JobSnapshot.from_detail(detail, self.framework)
        tail = ""
        if snap.tasks:
            try:
                text, _ = await c.log(self.framework, detail=detail, tail=True)
                tail = "\n".join(text.splitlines()[-self.log_lines:])
            except PaiError:
                pass
        self.show(snap, tail)

    def show(self, snap: JobSnapshot, log_tail: str | None = None) -> None:
        """Put ``snap`` on the widgets (also usable without the updater)."""
        self.snapshot = snap
        if not self.states_seen or self.states_seen[-1] != snap.state:
            self.states_seen.append(snap.state)
        self.header.value = (f"<b>{html.escape(snap.framework)}</b> {_badge(snap.state)}"
                             f" <span style='color:#657b83'>vc {html.escape(snap.virtual_cluster or '-')}"
                             f", retries {snap.retries}</span>")
        self.state.value = snap.state
        gpus = snap.gpus
        self.gpus.value = f"{len(gpus)}: {', '.join(gpus)}" if gpus else "none"
        self.waiting.value = snap.waiting_reason or ""
        rows = []
        for t in snap.tasks:
            sub = f" ({t.sub_state})" if t.sub_state else ""
            rows.append([html.escape(f"{t.role}/{t.index}"), _badge(t.state) + html.escape(sub),
                         html.escape(t.node or "-"), html.escape(t.gpus or "-"),
                         "" if t.exit_code is None else str(t.exit_code)])
        self.tasks.value = _table(["task", "state", "node", "GPUs", "exit"], rows) if rows else ""
        spec = snap.exit_spec
        if spec is not None and snap.state in ("FAILED", "STOPPED"):
            fixes = "".join(f"<li>{html.escape(s)}</li>" for s in spec.solution)
            self.failure.value = (f"<b>{html.escape(spec.phrase)}</b> ({html.escape(spec.type)}, "
                                  f"{html.escape(spec.behavior)}): {html.escape(spec.reason)}"
                                  + (f"<ul>{fixes}</ul>" if fixes else ""))
        elif snap.exit_diagnostics and snap.state == "FAILED":
            self.failure.value = html.escape(snap.exit_diagnostics)
        else:
            self.failure.value = ""
        if snap.debug_until:
            until = time.strftime("%H:%M:%S", time.localtime(snap.debug_until / 1000))
            kept = ", ".join(f"{t.role}/{t.index}" for t in snap.debugging)
            self.failure.value += (f"<p>kept for debugging until {until}: {html.escape(kept)} — "
                                   f"<code>%pai debug {html.escape(snap.framework)}</code></p>")
        self.release_button.layout.display = "" if snap.debug_until else "none"
        self.stop_button.disabled = snap.state in END_STATES
        if log_tail is not None:
            self.log_tail.value = log_tail

    def _action(self, what: str) -> None:
        try:
            with PaiClient(self._url, self._token) as c:
                c.stop(self.framework) if what == "stop" else c.release(self.framework)
                if self._thread is None or self.done.is_set():
                    self.show(JobSnapshot.from_detail(c.job(self.framework), self.framework))
        except PaiError as exc:
            self.waiting.value = f"{exc.code}: {exc.message}"


class JobsTable(widgets.VBox):
    """Jobs with filters (state, VC, keyword), a page at a time: ``rows`` are the jobs of the page
    shown (OpenPAI summaries), ``page`` the :class:`~pai_client.models.JobPage` with the total.
    Changing a filter lists again from the first page; Previous and Next move by ``limit``; Refresh
    re-reads the page shown. Only one page is ever asked of the server."""

    STATES = ("", "WAITING", "RUNNING", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED")

    def __init__(self, url: str | None = None, token: str | None = None, *, state: str = "", vc: str = "",
                 keyword: str = "", all_users: bool = False, limit: int = 100, offset: int = 0,
                 **kwargs: Any) -> None:
        self._url, self._token = url, token
        self.all_users, self.limit, self.offset = all_users, limit, offset
        self.rows: list[dict[str, Any]] = []
        self.page: JobPage | None = None
        self.state_filter = widgets.Dropdown(options=[(s or "any", s) for s in self.STATES], value=state,
                                             description="state")
        self.vc_filter = widgets.Text(vc, description="vc", continuous_update=False)
        self.keyword_filter = widgets.Text(keyword, description="keyword", continuous_update=False)
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.previous_button = widgets.Button(description="Previous", icon="chevron-left", disabled=True)
        self.next_button = widgets.Button(description="Next", icon="chevron-right", disabled=True)
        self.count = widgets.Label("")
        self.table = widgets.HTML("")
        for w in (self.state_filter, self.vc_filter, self.keyword_filter):
            w.observe(lambda _change: self.go_to(0), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.previous_button.on_click(lambda _b: self.go_to(self.page.previous_offset if self.page else 0))
        self.next_button.on_click(lambda _b: self.go_to(self.page.next_offset if self.page else 0))
        super().__init__([widgets.HBox([self.state_filter, self.vc_filter, self.keyword_filter,
                                        self.refresh_button]), self.table,
                          widgets.HBox([self.previous_button, self.count, self.next_button])], **kwargs)
        self.refresh()

    def go_to(self, offset: int | None) -> None:
        """Show the page that starts at ``offset``."""
        if offset is not None:
            self.offset = max(0, offset)
            self.refresh()

    def refresh(self) -> None:
        try:
            with PaiClient(self._url, self._token) as c:
                me = None if self.all_users else c.whoami()["username"]
                page = c.job_page(self.offset, self.limit, state=self.state_filter.value or None,
                                  vc=self.vc_filter.value or None, keyword=self.keyword_filter.value or None,
                                  username=me)
        except PaiError as exc:
            self.count.value = f"{exc.code}: {exc.message}"
            return
        self.page, self.rows = page, page.jobs
        body = [[html.escape(j["name"]), html.escape(j["username"]), _badge(j["state"]),
                 html.escape(j.get("virtualCluster") or ""), str(j.get("totalTaskNumber", "")),
                 str(j.get("totalGpuNumber", "")), str(j.get("retries", "")),
                 html.escape(j.get("waitingReason") or "")] for j in self.rows]
        self.table.value = _table(["name", "user", "state", "vc", "tasks", "GPUs", "retries", "waiting"], body)
        self.count.value = f"jobs {page.label}"
        self.previous_button.disabled = page.previous_offset is None
        self.next_button.disabled = page.next_offset is None


class TerminalView(widgets.VBox):
    """A shell in a task over PAI's websocket terminal: an output area and a one-line input (Enter
    sends the line), with Ctrl-C / Ctrl-D / Close buttons. Not a full terminal emulator: escape
    sequences are stripped, so line-oriented commands work and full-screen programs do not.

    ``send(text)`` writes to the shell; ``text`` is everything the shell printed so far;
    ``wait_for(pattern)`` blocks until it appears.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None, *, title: str = "",
                 rows: int = 24, cols: int = 120, connect_timeout: float = 15.0, **kwargs: Any) -> None:
        self.url, self.headers = url, dict(headers or {})
        self.text = ""
        self.error: str | None = None
        self.connected = threading.Event()
        self.closed = threading.Event()
        self._changed = threading.Condition()
        self._conn: Any = None
        self.status = widgets.HTML(f"<b>{html.escape(title)}</b> connecting…")
        self.screen = widgets.Textarea("", disabled=True, rows=min(rows, 20), layout=widgets.Layout(width="100%"))
        self.input = widgets.Text("", placeholder="command, then Enter", layout=widgets.Layout(width="70%"))
        self.input.continuous_update = False
        self.input.observe(self._submit, names="value")
        buttons = [widgets.Button(description=d, layout=widgets.Layout(width="auto")) for d in ("Ctrl-C", "Ctrl-D",
                                                                                                 "Close")]
        buttons[0].on_click(lambda _b: self.send("\x03"))
        buttons[1].on_click(lambda _b: self.send("\x04"))
        buttons[2].on_click(lambda _b: self.close())
        self._title = title
        super().__init__([self.status, self.screen, widgets.HBox([self.input, *buttons])], **kwargs)
        self._thread = _LoopThread("pai-terminal")
        self._thread.run(self._run(rows, cols))
        self.connected.wait(connect_timeout)

    async def _run(self, rows: int, cols: int) -> None:
        try:
            self._conn = await terminal.connect(self.url, self.headers)
        except PaiError as exc:
            self.error = exc.message if exc.code in ("Error", "ConnectionError") else f"{exc.code}: {exc.message}"
        if self.error:
            self.status.value = f"<b>{html.escape(self._title)}</b> {html.escape(self.error)}"
            self.connected.set()
            self._finish()
            return
        self.status.value = f"<b>{html.escape(self._title)}</b> connected"
        self._conn.write_message(terminal.message("set_size", rows, cols))
        self.connected.set()
        try:
            while (message := await self._conn.read_message()) is not None:
                kind, rest = terminal.parse(message)
                if kind == "stdout" and rest:
                    with self._changed:
                        self.text += str(rest[0])
                        self._changed.notify_all()
                    self.screen.value = _ANSI.sub("", self.text)[-20000:]
                elif kind == "disconnect":
                    break
        finally:
            self.status.value = f"<b>{html.escape(self._title)}</b> disconnected"
            self._finish()

    def _finish(self) -> None:
        self.closed.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.stop()

    def _submit(self, change: dict[str, Any]) -> None:
        line = change["new"]
        if line:
            self.send(line + "\n")
            self.input.value = ""

    def send(self, data: str) -> None:
        if self._conn is None or self.closed.is_set():
            raise PaiError(0, "TerminalClosed", "the terminal is not connected")
        message = terminal.message("stdin", data)
        try:
            self._thread.loop.call_soon_threadsafe(self._conn.write_message, message)
        except RuntimeError:  # the loop has ended meanwhile
            raise PaiError(0, "TerminalClosed", "the terminal is not connected") from None

    def wait_for(self, pattern: str, timeout: float = 10.0) -> bool:
        """Block until ``pattern`` (a regular expression) is in the output, or the shell ended."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not re.search(pattern, self.text):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    return bool(re.search(pattern, self.text))
                self._changed.wait(left)
        return True

    def close(self) -> None:
        if self._conn is not None and not self.closed.is_set():
            try:
                self._thread.loop.call_soon_threadsafe(self._conn.close)
            except RuntimeError:  # the loop has ended meanwhile
                pass
        super().close()


class TrialsView(widgets.VBox):
    """An NNI experiment, live: its state, best final metric and a trials table (parameters,
    intermediate and final metrics, state, the trial's PAI job), polled from the experiments API.

    ``state`` (Label), ``trials`` (HTML table); ``experiment`` is the last answer, ``states_seen``
    every state shown, ``wait()`` blocks until the experiment has ended."""

    ENDED = ("DONE", "STOPPED", "FAILED", "ERROR")

    def __init__(self, experiment_id: str, url: str | None = None, token: str | None = None, *,
                 poll_interval: float = 2.0, start: bool = True, **kwargs: Any) -> None:
        self.experiment_id = experiment_id
        self._url, self._token = url, token
        self.poll_interval = poll_interval
        self.experiment: dict[str, Any] | None = None
        self.states_seen: list[str] = []
        self.error: str | None = None
        self.done = threading.Event()
        self._closing = False
        self.header = widgets.HTML(f"<b>experiment {html.escape(experiment_id)}</b>")
        self.state = widgets.Label("…", description="state")
        self.best = widgets.Label("", description="best")
        self.trials = widgets.HTML("")
        super().__init__([self.header, self.state, self.best, self.trials], **kwargs)
        if start:
            threading.Thread(target=self._poll, name=f"pai-nni-{experiment_id}", daemon=True).start()

    def refresh(self, client: PaiClient) -> None:
        e = client.experiment(self.experiment_id)
        self.experiment = e
        if not self.states_seen or self.states_seen[-1] != e["state"]:
            self.states_seen.append(e["state"])
        self.state.value = e["state"]
        self.best.value = "" if e.get("bestFinal") is None else f"{e['bestFinal']:.6g}"
        rows = "".join(self._trial_row(t) for t in e.get("trials") or [])
        self.trials.value = ("<table><tr><th>#</th><th>state</th><th>parameters</th><th>intermediate</th>"
                             f"<th>final</th><th>job</th></tr>{rows}</table>")
        if e["state"] in self.ENDED:
            self.done.set()

    @staticmethod
    def _trial_row(t: dict[str, Any]) -> str:
        """One trial as a table row. NNI lists a trial before its PAI job exists, and a state may
        not be known yet: such fields are shown empty."""
        def text(value: Any) -> str:
            return "" if value is None else html.escape(str(value))

        job = t.get("job") or {}
        state = f" ({text(job.get('state'))})" if job.get("state") else ""
        return (f"<tr><td>{text(t.get('sequence'))}</td><td>{text(t.get('state'))}</td>"
                f"<td><code>{html.escape(json.dumps(t.get('parameters')))}</code></td>"
                f"<td>{len(t.get('intermediate') or [])}</td><td>{text(t.get('final'))}</td>"
                f"<td>{text(job.get('name'))}{state}</td></tr>")

    def _poll(self) -> None:
        with PaiClient(self._url, self._token) as client:
            while not self._closing and not self.done.is_set():
                try:
                    self.refresh(client)
                except PaiError as exc:
                    self.error = f"{exc.code}: {exc.message}"
                    self.state.value = f"error: {self.error}"
                except Exception as exc:  # the watcher must outlive a bad answer, or wait() never ends
                    self.error = f"{type(exc).__name__}: {exc}"
                    self.state.value = f"error: {self.error}"
                if not self.done.is_set():
                    time.sleep(self.poll_interval)

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        self.done.wait(timeout)
        return self.experiment

    def close(self) -> None:
        self._closing = True
        super().close()

/** The jobs sidebar (my jobs, a page at a time, filtered by the server) and a job's detail tab
 * (live state, tasks, logs, stop, debug). */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import type { IPaiApi } from './api';
import { fmtTime, h, options, stateBadge } from './dom';
import {
  exitInfo,
  FINAL_STATES,
  frameworkName,
  JOB_STATES,
  JobFilter,
  jobsQuery,
  JobSummary,
  pageLabel,
  parseSSE,
  proxiedPath,
  TaskRow,
  taskRows
} from './model';
import { quietly, widgetPoll } from './polling';

/** Jobs per page of the panel. */
export const PAGE_SIZE = 50;

/** My jobs, one page at a time: the filters are query parameters of `GET jobs` (the server filters
 * and counts with its indexes), next/previous move the offset, and the poll re-reads only the page
 * shown. So the panel costs the same with ten jobs or a million in the history. */
export class JobsPanel extends Widget {
  private jobs: JobSummary[] = [];
  private total = 0;
  private offset = 0;
  /** counts the queries asked, so that an answer to an earlier one is dropped */
  private generation = 0;
  private vcsLoaded = false;
  private filter: JobFilter = { state: '', vc: '', name: '' };
  private keywordTimer: ReturnType<typeof setTimeout> | undefined;
  private stateSel = h('select', { 'aria-label': 'Filter by state', class: 'pai-Filter-state' });
  private vcSel = h('select', { 'aria-label': 'Filter by virtual cluster', class: 'pai-Filter-vc' });
  private nameInput = h('input', {
    type: 'search',
    placeholder: 'Filter by name',
    'aria-label': 'Filter by name',
    class: 'pai-Filter-name'
  });
  private body = h('tbody');
  private message = h('div', { class: 'pai-Message', role: 'status' });
  private pageInfo = h('span', { class: 'pai-PageInfo', 'aria-live': 'polite' });
  private prevBtn = h('button', { class: 'jp-Button pai-Button pai-PagePrev', 'aria-label': 'Previous page' }, '‹ Previous');
  private nextBtn = h('button', { class: 'jp-Button pai-Button pai-PageNext', 'aria-label': 'Next page' }, 'Next ›');
  /** the page shown, kept fresh while it is shown */
  readonly poll: Poll;

  constructor(
    private api: IPaiApi,
    private onOpen: (fw: string) => void,
    refreshMs = 5000,
    readonly pageSize = PAGE_SIZE,
    /** how long typing in the name filter pauses before the server is asked */
    private keywordDelayMs = 300
  ) {
    super();
    this.poll = widgetPoll(this, () => this.load(), { name: 'jobs', interval: refreshMs });
    this.id = 'pai-jobs';
    this.addClass('pai-Panel');
    this.addClass('pai-JobsPanel');
    this.title.caption = 'PAI jobs';
    options(this.stateSel, [['', 'All states'], ...JOB_STATES.map(s => [s, s] as [string, string])]);
    options(this.vcSel, [['', 'All VCs']]);
    this.stateSel.onchange = () => void this.setFilter({ state: this.stateSel.value });
    this.vcSel.onchange = () => void this.setFilter({ vc: this.vcSel.value });
    this.nameInput.oninput = () => {
      clearTimeout(this.keywordTimer);
      this.keywordTimer = setTimeout(() => void this.setFilter({ name: this.nameInput.value }), this.keywordDelayMs);
    };
    this.prevBtn.onclick = () => void this.goTo(this.offset - this.pageSize);
    this.nextBtn.onclick = () => void this.goTo(this.offset + this.pageSize);
    const refresh = h('button', { class: 'jp-Button pai-Button', onclick: () => this.refresh() }, 'Refresh');
    this.node.append(
      h('h2', { class: 'pai-Title' }, 'My PAI jobs'),
      h('div', { class: 'pai-Toolbar' }, this.stateSel, this.vcSel, this.nameInput, refresh),
      this.message,
      h(
        'table',
        { class: 'pai-Table pai-JobsTable' },
        h(
          'thead',
          {},
          h('tr', {}, h('th', {}, 'Job'), h('th', {}, 'State'), h('th', {}, 'VC'), h('th', {}, 'GPUs'), h('th', {}, 'Tasks'))
        ),
        this.body
      ),
      h('div', { class: 'pai-Toolbar pai-Pager' }, this.prevBtn, this.pageInfo, this.nextBtn)
    );
    this.renderPager();
  }

  /** Change the filters: back to the first page, asked of the server now. */
  setFilter(f: Partial<JobFilter>): Promise<void> {
    this.filter = { ...this.filter, ...f };
    this.offset = 0;
    return this.refresh();
  }

  /** Show the page starting at `offset` (clamped to the list). */
  goTo(offset: number): Promise<void> {
    this.offset = Math.max(0, offset);
    return this.refresh();
  }

  /** Reload the page shown now (a failure is shown in the panel). */
  refresh(): Promise<void> {
    return quietly(() => this.load());
  }

  /** Read the page shown; a failure is shown, and rethrown for the poll to back off. */
  private async load(): Promise<void> {
    const generation = ++this.generation;
    if (!this.vcsLoaded) {
      await this.loadVcs();
    }
    let page: { totalCount: number; data: JobSummary[] };
    try {
      page = await this.api.get(jobsQuery(this.filter, this.offset, this.pageSize));
    } catch (e: any) {
      if (generation === this.generation) {
        this.message.textContent = `Cannot list jobs: ${e.message}`;
      }
      throw e;
    }
    if (generation !== this.generation) {
      return; // the filters or the page changed meanwhile: that answer is being read
    }
    if (!page.data.length && page.totalCount > 0 && this.offset > 0) {
      // the list shrank under the page shown: show its last page instead
      this.offset = Math.floor((page.totalCount - 1) / this.pageSize) * this.pageSize;
      return this.load();
    }
    this.jobs = page.data;
    this.total = page.totalCount;
    this.message.textContent = '';
    this.render();
  }

  /** The VC choices: every virtual cluster (`GET virtual-clusters`), not only those of the jobs shown. */
  private async loadVcs(): Promise<void> {
    try {
      const vcs = Object.keys(await this.api.get('virtual-clusters')).sort();
      options(this.vcSel, [['', 'All VCs'], ...vcs.map(v => [v, v] as [string, string])], this.filter.vc);
      this.vcsLoaded = true;
    } catch {
      /* tried again at the next load; the list works without the choices */
    }
  }

  render(): void {
    this.body.replaceChildren(
      ...this.jobs.map(j =>
        h(
          'tr',
          { 'data-job': frameworkName(j), title: j.waitingReason ? `waiting: ${j.waitingReason}` : '' },
          h('td', {}, h('button', { class: 'pai-Link', onclick: () => this.onOpen(frameworkName(j)) }, j.name)),
          h('td', {}, stateBadge(j.state)),
          h('td', {}, j.virtualCluster),
          h('td', { class: 'pai-Num' }, String(j.totalGpuNumber ?? 0)),
          h('td', { class: 'pai-Num' }, String(j.totalTaskNumber ?? 0))
        )
      )
    );
    if (!this.jobs.length) {
      const filtered = this.filter.state || this.filter.vc || this.filter.name.trim();
      this.message.textContent = filtered ? 'No job matches the filters.' : 'No jobs yet.';
    }
    this.renderPager();
  }

  private renderPager(): void {
    this.pageInfo.textContent = pageLabel(this.offset, this.jobs.length, this.total);
    this.prevBtn.disabled = this.offset <= 0;
    this.nextBtn.disabled = this.offset + this.jobs.length >= this.total;
  }

  dispose(): void {
    clearTimeout(this.keywordTimer);
    super.dispose();
  }
}

export class JobDetail extends Widget {
  private detail: any = null;
  private state = h('span', { class: 'pai-JobState', 'aria-live': 'polite' });
  private info = h('div', { class: 'pai-JobInfo' });
  private tasks = h('tbody');
  private events = h('ol', { class: 'pai-Events', 'aria-label': 'Job events' });
  private logTitle = h('h3', {}, 'Logs');
  private logSel = h('select', { 'aria-label': 'Log', class: 'pai-LogName' });
  private follow = h('input', { type: 'checkbox', id: '', checked: true, class: 'pai-Follow' });
  private log = h('pre', { class: 'pai-Log', tabindex: '0', 'aria-label': 'Task log' });
  private stopBtn = h('button', { class: 'jp-Button pai-Button pai-Stop' }, 'Stop job');
  private logTask: TaskRow | null = null;
  private logOffset = 0;
  /** counts the logs shown, so that a read for an earlier one is dropped */
  private logGeneration = 0;
  /** whether the log was read after the job was seen ended (its last lines are in) */
  private finalLogRead = false;
  /** the chosen log, followed while the job runs and the tab is shown */
  readonly logPoll: Poll;
  private abort = new AbortController();

  constructor(
    private api: IPaiApi,
    readonly fw: string,
    private onTerminal: (fw: string, role: string, index: number) => void,
    logRefreshMs = 1500
  ) {
    super();
    this.logPoll = widgetPoll(this, () => this.readLog(), { name: 'job-log', interval: logRefreshMs, auto: false });
    this.addClass('pai-Panel');
    this.addClass('pai-JobDetail');
    this.id = `pai-job-${fw.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.title.label = fw.split('~')[1] ?? fw;
    this.title.caption = `PAI job ${fw}`;
    this.title.closable = true;
    this.stopBtn.onclick = () => void this.stop();
    options(this.logSel, ['all', 'stdout', 'stderr', 'runtime.log'].map(n => [n, n] as [string, string]));
    this.logSel.onchange = () => this.showLog(this.logTask);
    const followId = `${this.id}-follow`;
    this.follow.id = followId;
    this.follow.onchange = () => this.followLog();
    this.node.append(
      h('h2', { class: 'pai-Title' }, fw, ' ', this.state),
      h('div', { class: 'pai-Toolbar' }, this.stopBtn),
      this.info,
      h('h3', {}, 'Tasks'),
      h(
        'table',
        { class: 'pai-Table pai-TasksTable' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Task', 'State', 'Node', 'GPUs', 'Exit code', ''].map(t => h('th', {}, t))
          )
        ),
        this.tasks
      ),
      this.logTitle,
      h('div', { class: 'pai-Toolbar' }, this.logSel, h('label', { for: followId }, this.follow, ' Follow')),
      this.log,
      h('details', {}, h('summary', {}, 'Events'), this.events)
    );
  }

  get jobState(): string {
    return this.detail?.jobStatus?.state ?? '';
  }

  async start(): Promise<void> {
    await this.load();
    void this.watch();
  }

  async load(): Promise<void> {
    try {
      this.detail = await this.api.get(`jobs/${this.fw}`);
    } catch (e: any) {
      this.info.replaceChildren(h('div', { class: 'pai-Error', role: 'alert' }, e.message));
      return;
    }
    this.render();
    if (!this.logTask) {
      const rows = taskRows(this.detail);
      if (rows.length && rows[0].logPath) {
        this.showLog(rows[0]);
      }
    } else {
      // the task may have a log location only now
      const row = taskRows(this.detail).find(r => r.role === this.logTask!.role && r.index === this.logTask!.index);
      if (row && row.logPath !== this.logTask.logPath) {
        this.showLog(row);
      }
    }
  }

  private render(): void {
    const st = this.detail.jobStatus ?? {};
    this.state.replaceChildren(stateBadge(st.state));
    this.node.dataset.state = st.state;
    this.stopBtn.disabled = FINAL_STATES.has(st.state);
    const items: HTMLElement[] = [
      h('div', {}, `Virtual cluster: ${st.virtualCluster ?? ''}`),
      h('div', {}, `Submitted: ${fmtTime(st.submissionTime)}`)
    ];
    if (st.launchedTime) {
      items.push(h('div', {}, `Launched: ${fmtTime(st.launchedTime)}`));
    }
    if (st.completedTime) {
      items.push(h('div', {}, `Completed: ${fmtTime(st.completedTime)} (exit code ${st.appExitCode ?? ''})`));
    }
    if (st.waitingReason) {
      items.push(h('div', { class: 'pai-Waiting' }, `Waiting: ${st.waitingReason}`));
    }
    const exit = exitInfo(this.detail);
    if (exit) {
      items.push(
        h(
          'div',
          { class: 'pai-ExitSpec', role: 'note' },
          h('div', {}, h('strong', {}, 'Failure: '), `${exit.category} — ${exit.phrase}`),
          exit.reason ? h('div', {}, h('strong', {}, 'Reason: '), exit.reason) : null,
          exit.solution ? h('div', {}, h('strong', {}, 'Resolution: '), exit.solution) : null
        )
      );
    } else if (st.appExitDiagnostics) {
      items.push(h('div', { class: 'pai-ExitSpec' }, st.appExitDiagnostics));
    }
    if (st.debugReservation) {
      items.push(h('div', { class: 'pai-Debug' }, `Debug reservation until ${fmtTime(st.debugReservation.until)}`));
    }
    this.info.replaceChildren(...items);
    this.tasks.replaceChildren(
      ...taskRows(this.detail).map(t => {
        const debuggable = t.subState === 'DEBUGGING' || t.state === 'RUNNING';
        return h(
          'tr',
          { 'data-task': `${t.role}/${t.index}` },
          h('td', {}, `${t.role}[${t.index}]`),
          h('td', {}, stateBadge(t.subState === 'DEBUGGING' ? 'DEBUGGING' : t.state)),
          h('td', {}, t.node),
          h('td', {}, t.gpus),
          h('td', {}, t.exitCode === null ? '' : String(t.exitCode)),
          h(
            'td',
            {},
            h(
              'button',
              { class: 'jp-Button pai-Button pai-ShowLog', disabled: !t.logPath, onclick: () => this.showLog(t) },
              'Logs'
            ),
            debuggable
              ? h(
                  'button',
                  {
                    class: 'jp-Button pai-Button pai-OpenTerminal',
                    onclick: () => this.onTerminal(this.fw, t.role, t.index)
                  },
                  t.subState === 'DEBUGGING' ? 'Open debug terminal' : 'Open terminal'
                )
              : null
          )
        );
      })
    );
  }

  /** The job's events stream: live state (and a detail refresh on each event). */
  private async watch(): Promise<void> {
    let buffer = '';
    try {
      await this.api.stream(
        `jobs/${this.fw}/events`,
        chunk => {
          const { events, rest } = parseSSE(buffer + chunk);
          buffer = rest;
          for (const ev of events) {
            const data = JSON.parse(ev.data);
            if (ev.event === 'end') {
              this.events.append(h('li', {}, `ended: ${data.state}`));
            } else {
              this.events.append(h('li', {}, `${data.lastTimestamp ?? ''} ${data.reason}: ${data.message ?? ''}`));
            }
          }
          if (events.length) {
            void this.load();
          }
        },
        this.abort.signal
      );
    } catch (e: any) {
      if (this.abort.signal.aborted) {
        return;
      }
    }
    if (!this.abort.signal.aborted) {
      await this.load(); // the stream ended: the job is final
    }
  }

  showLog(t: TaskRow | null): void {
    if (!t || !t.logPath) {
      return;
    }
    this.logTask = t;
    this.logGeneration += 1;
    this.log.textContent = '';
    delete this.log.dataset.error;
    this.logOffset = 0;
    this.finalLogRead = false;
    this.logTitle.textContent = `Logs of ${t.role}[${t.index}]`;
    this.followLog();
  }

  /** Read the log now; with Follow checked, keep reading (the poll stops itself once the job ended
   * and its last lines are read), else stop. */
  private followLog(): void {
    if (this.follow.checked) {
      void this.logPoll.refresh();
    } else {
      void this.logPoll.stop();
      void quietly(() => this.readLog());
    }
  }

  /** Append what the task wrote since the last read. A failure is noted on the log and rethrown
   * (the poll backs off); a log that does not exist yet is no failure. */
  private async readLog(): Promise<void> {
    const t = this.logTask;
    if (!t?.logPath) {
      return;
    }
    const { logGeneration, logOffset } = this;
    try {
      const r = await this.api.text(`${proxiedPath(t.logPath)}/${this.logSel.value}?offset=${logOffset}`);
      if (logGeneration !== this.logGeneration || logOffset !== this.logOffset) {
        return; // another log was chosen, or another read got these lines first
      }
      if (r.text) {
        const atEnd = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
        this.log.textContent += r.text;
        if (atEnd) {
          this.log.scrollTop = this.log.scrollHeight;
        }
      }
      this.logOffset = r.offset ?? this.logOffset + r.text.length;
      delete this.log.dataset.error;
    } catch (e: any) {
      if (e.code !== 'NoTaskLogError') {
        this.log.dataset.error = e.message;
        throw e;
      }
    }
    // an ended job's log is read once more after the end was seen (its last lines), then no more
    if (FINAL_STATES.has(this.jobState)) {
      if (this.finalLogRead) {
        void this.logPoll.stop();
      }
      this.finalLogRead = true;
    }
  }

  async stop(): Promise<void> {
    try {
      await this.api.send('PUT', `jobs/${this.fw}/executionType`, JSON.stringify({ value: 'STOP' }));
    } catch (e: any) {
      this.info.prepend(h('div', { class: 'pai-Error', role: 'alert' }, e.message));
    }
    await this.load();
  }

  dispose(): void {
    this.abort.abort(); // the event stream; the log poll goes with the widget
    super.dispose();
  }
}

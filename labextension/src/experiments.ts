/** NNI experiments in the Lab: the list (sidebar), an experiment's tab (progress, metric chart, trials
 * table with parameters and metrics, stop / resume); its NNI web UI tab is nni-ui.ts. */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import type { IPaiApi } from './api';
import { metricChart } from './chart';
import { fmtTime, h, stateBadge } from './dom';
import {
  ACTIVE_EXPERIMENT,
  bestTrial,
  canResume,
  canStop,
  Experiment,
  finalSeries,
  fmtValue,
  intermediateSeries,
  parameter,
  parameterKeys,
  progressText,
  SortKey,
  sortTrials,
  Trial
} from './experiment-model';
import { quietly, widgetPoll } from './polling';

/** The sidebar: my experiments, newest first, with progress and the best metric. */
export class ExperimentsPanel extends Widget {
  private body = h('tbody');
  private message = h('div', { class: 'pai-Message', role: 'status' });
  experiments: Experiment[] = [];
  /** the list, kept fresh while it is shown */
  readonly poll: Poll;

  constructor(
    private api: IPaiApi,
    private onOpen: (id: string) => void,
    refreshMs = 5000
  ) {
    super();
    this.poll = widgetPoll(this, () => this.load(), { name: 'experiments', interval: refreshMs });
    this.id = 'pai-experiments';
    this.addClass('pai-Panel');
    this.addClass('pai-ExperimentsPanel');
    this.title.caption = 'PAI experiments';
    const refresh = h('button', { class: 'jp-Button pai-Button', onclick: () => void this.refresh() }, 'Refresh');
    this.node.append(
      h('h2', { class: 'pai-Title' }, 'My NNI experiments'),
      h('div', { class: 'pai-Toolbar' }, refresh),
      this.message,
      h(
        'table',
        { class: 'pai-Table pai-ExperimentsTable' },
        h('thead', {}, h('tr', {}, ...['Experiment', 'State', 'Trials', 'Best'].map(t => h('th', {}, t)))),
        this.body
      )
    );
  }

  /** Reload the list now (a failure is shown in the panel). */
  refresh(): Promise<void> {
    return quietly(() => this.load());
  }

  /** Reload the list; a failure is shown, and rethrown for the poll to back off. */
  private async load(): Promise<void> {
    try {
      this.experiments = await this.api.get('experiments');
      this.message.textContent = this.experiments.length
        ? ''
        : 'No experiments yet: create one with `%pai nni create`, `pai experiment create` or POST /api/v2/experiments.';
    } catch (e: any) {
      this.message.textContent = `Cannot list experiments: ${e.message}`;
      throw e;
    }
    this.render();
  }

  private render(): void {
    this.body.replaceChildren(
      ...this.experiments.map(e =>
        h(
          'tr',
          { 'data-experiment': e.id, title: e.message || '' },
          h(
            'td',
            {},
            h('button', { class: 'pai-Link', onclick: () => this.onOpen(e.id), 'aria-label': `Open experiment ${e.name} (${e.id})` }, e.name),
            h('div', { class: 'pai-Summary' }, e.id)
          ),
          h('td', {}, stateBadge(e.state)),
          h('td', {}, progressText(e)),
          h('td', { class: 'pai-Num' }, fmtValue(e.bestFinal))
        )
      )
    );
  }
}

type ChartKind = 'final' | 'intermediate';

/** One experiment: live while NNI runs, then the record PAI keeps. */
export class ExperimentDetail extends Widget {
  experiment: Experiment | null = null;
  private state = h('span', { class: 'pai-ExperimentState', 'aria-live': 'polite' });
  private info = h('div', { class: 'pai-ExperimentInfo' });
  private message = h('div', { class: 'pai-Message', role: 'status' });
  private stopBtn = h('button', { class: 'jp-Button pai-Button pai-StopExperiment' }, 'Stop experiment');
  private resumeBtn = h('button', { class: 'jp-Button pai-Button pai-ResumeExperiment' }, 'Resume');
  private uiBtn = h('button', { class: 'jp-Button pai-Button pai-OpenNni' }, 'Open NNI web UI');
  private chartTabs: Record<ChartKind, HTMLButtonElement>;
  private chartKind: ChartKind = 'final';
  private chart = h('div', { class: 'pai-ChartBox', role: 'tabpanel' });
  private head = h('tr');
  private body = h('tbody');
  private sort: { key: SortKey; descending: boolean } = { key: 'sequence', descending: false };
  /** the record, kept fresh while NNI runs trials and the tab is shown */
  readonly poll: Poll;

  constructor(
    private api: IPaiApi,
    readonly experimentId: string,
    private onJob: (fw: string) => void,
    private onUi: (e: Experiment) => void,
    refreshMs = 3000
  ) {
    super();
    this.poll = widgetPoll(this, () => this.follow(), { name: 'experiment', interval: refreshMs, auto: false });
    this.addClass('pai-Panel');
    this.addClass('pai-ExperimentDetail');
    this.id = `pai-experiment-${experimentId}`;
    this.title.label = `Experiment ${experimentId}`;
    this.title.caption = `NNI experiment ${experimentId}`;
    this.title.closable = true;
    this.stopBtn.onclick = () => void this.execute('STOP');
    this.resumeBtn.onclick = () => void this.execute('RESUME');
    this.uiBtn.onclick = () => this.experiment && this.onUi(this.experiment);
    const tab = (kind: ChartKind, label: string) =>
      h('button', { class: 'pai-Tab', role: 'tab', 'aria-selected': 'false', onclick: () => this.showChart(kind) }, label);
    this.chartTabs = { final: tab('final', 'Final metrics'), intermediate: tab('intermediate', 'Intermediate metrics') };
    this.chart.id = `${this.id}-chart`;
    for (const t of Object.values(this.chartTabs)) {
      t.setAttribute('aria-controls', this.chart.id);
      t.onkeydown = (ev: KeyboardEvent) => {
        if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
          this.showChart(this.chartKind === 'final' ? 'intermediate' : 'final');
          this.chartTabs[this.chartKind].focus();
        }
      };
    }
    this.node.append(
      h('h2', { class: 'pai-Title' }, h('span', { class: 'pai-ExperimentName' }, experimentId), ' ', this.state),
      h('div', { class: 'pai-Toolbar' }, this.stopBtn, this.resumeBtn, this.uiBtn),
      this.message,
      this.info,
      h('h3', {}, 'Metrics'),
      h('div', { class: 'pai-Tabs', role: 'tablist', 'aria-label': 'Metric chart' }, ...Object.values(this.chartTabs)),
      this.chart,
      h('h3', {}, 'Trials'),
      h('table', { class: 'pai-Table pai-TrialsTable' }, h('thead', {}, this.head), this.body)
    );
    this.setTab();
  }

  /** Load the experiment now and keep it fresh until it ends (resolves after the first load). */
  async start(): Promise<void> {
    await this.poll.refresh();
    await this.poll.tick.catch(() => undefined); // rejected only if the tab closed meanwhile
  }

  /** Load the experiment now (a failure is shown in the tab). */
  load(): Promise<void> {
    return quietly(() => this.fetch());
  }

  /** One tick of the poll: load, and stop once the experiment ended (its record no longer changes). */
  private async follow(): Promise<void> {
    await this.fetch();
    if (!ACTIVE_EXPERIMENT.has(this.experiment!.state)) {
      void this.poll.stop();
    }
  }

  /** Load the experiment; a failure is shown, and rethrown for the poll to back off. */
  private async fetch(): Promise<void> {
    try {
      this.experiment = await this.api.get(`experiments/${encodeURIComponent(this.experimentId)}`);
    } catch (e: any) {
      this.message.textContent = `Cannot load experiment ${this.experimentId}: ${e.message}`;
      throw e;
    }
    this.render();
  }

  render(): void {
    const e = this.experiment!;
    this.title.label = `${e.name} (${e.id})`;
    this.node.dataset.state = e.state;
    this.node.querySelector('.pai-ExperimentName')!.textContent = `${e.name} (${e.id})`;
    this.state.replaceChildren(stateBadge(e.state));
    this.message.textContent = e.message || '';
    const mode = e.optimizeMode ?? 'maximize';
    this.info.replaceChildren(
      h(
        'dl',
        { class: 'pai-Facts' },
        ...(
          [
            ['Progress', progressText(e)],
            ['Best final metric', `${fmtValue(e.bestFinal) || '-'} (${mode})`],
            ['Tuner', e.tuner?.name ?? ''],
            ['Virtual cluster', e.virtualCluster],
            ['Concurrency', String(e.trialConcurrency)],
            ['NNI status', e.nniStatus ?? ''],
            ['Created', fmtTime(e.createdTime)],
            ['Completed', fmtTime(e.completedTime)]
          ] as [string, string][]
        ).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])
      )
    );
    this.stopBtn.disabled = !canStop(e);
    this.resumeBtn.disabled = !canResume(e);
    this.uiBtn.disabled = !e.ui;
    this.uiBtn.title = e.ui ? '' : 'NNI is not running for this experiment (resume it to see its web UI)';
    this.renderChart();
    this.renderTrials();
  }

  showChart(kind: ChartKind): void {
    this.chartKind = kind;
    this.setTab();
    this.renderChart();
  }

  private setTab(): void {
    for (const [kind, t] of Object.entries(this.chartTabs)) {
      const on = kind === this.chartKind;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
    }
  }

  private renderChart(): void {
    const e = this.experiment;
    const trials = e?.trials ?? [];
    const chart =
      this.chartKind === 'final'
        ? metricChart(finalSeries(trials, e?.optimizeMode), {
            xLabel: 'trial',
            yLabel: 'final metric',
            description: `Final metric of each trial and the best so far (${e?.optimizeMode ?? 'maximize'})`
          })
        : metricChart(intermediateSeries(trials), {
            xLabel: 'report',
            yLabel: 'intermediate metric',
            description: 'Intermediate metrics of each trial, by report'
          });
    this.chart.dataset.kind = this.chartKind;
    this.chart.replaceChildren(chart);
  }

  setSort(key: SortKey): void {
    this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : key === 'final' };
    this.renderTrials();
  }

  private renderTrials(): void {
    const e = this.experiment;
    const trials = e?.trials ?? [];
    const keys = parameterKeys(trials);
    const header = (label: string, key: SortKey | null) => {
      if (!key) {
        return h('th', {}, label);
      }
      const sorted = this.sort.key === key;
      const dir = sorted ? (this.sort.descending ? 'descending' : 'ascending') : 'none';
      return h(
        'th',
        { 'aria-sort': dir },
        h('button', { class: 'pai-SortButton', onclick: () => this.setSort(key) }, label, sorted ? (this.sort.descending ? ' ▼' : ' ▲') : '')
      );
    };
    this.head.replaceChildren(
      header('#', 'sequence'),
      header('Trial', null),
      header('State', 'state'),
      ...keys.map(k => header(k, `param:${k}`)),
      header('Final', 'final'),
      header('Intermediate', null),
      header('Job', null)
    );
    const best = bestTrial(trials, e?.optimizeMode);
    const row = (t: Trial) =>
      h(
        'tr',
        { 'data-trial': t.id, class: t.id === best ? 'pai-Best' : '', title: t.id === best ? 'best trial' : '' },
        h('td', { class: 'pai-Num' }, fmtValue(t.sequence)),
        h('td', {}, t.id),
        h('td', {}, stateBadge(t.state)),
        ...keys.map(k => h('td', { class: 'pai-Param', 'data-param': k }, fmtValue(parameter(t, k)))),
        h('td', { class: 'pai-Num pai-Final' }, fmtValue(t.final)),
        h('td', { class: 'pai-Intermediate' }, t.intermediate?.length ? `${t.intermediate.length}: ${t.intermediate.slice(-3).map(fmtValue).join(', ')}` : ''),
        h(
          'td',
          {},
          h('button', { class: 'pai-Link', onclick: () => this.onJob(t.job.name), title: `open PAI job ${t.job.name}` }, t.job.state ?? 'job')
        )
      );
    this.body.replaceChildren(...sortTrials(trials, this.sort.key, this.sort.descending).map(row));
    if (!trials.length) {
      this.body.append(h('tr', {}, h('td', { colspan: String(6 + keys.length) }, 'No trials yet.')));
    }
  }

  async execute(value: 'STOP' | 'RESUME'): Promise<void> {
    this.stopBtn.disabled = this.resumeBtn.disabled = true;
    try {
      this.experiment = await this.api.send(
        'PUT',
        `experiments/${encodeURIComponent(this.experimentId)}/executionType`,
        JSON.stringify({ value })
      );
      await this.load();
      if (value === 'RESUME') {
        void this.poll.refresh(); // running again: follow it
      }
    } catch (e: any) {
      if (this.experiment) {
        this.render();
      }
      this.message.textContent = `Cannot ${value.toLowerCase()} the experiment: ${e.message}`;
    }
  }
}

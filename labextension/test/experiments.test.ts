import { describe, expect, it } from 'vitest';

import { metricChart } from '../src/chart';
import {
  bestTrial,
  canResume,
  canStop,
  Experiment,
  extent,
  finalSeries,
  fmtValue,
  intermediateSeries,
  parameterKeys,
  progressText,
  scale,
  sortTrials,
  ticks,
  Trial
} from '../src/experiment-model';
import { ExperimentDetail, ExperimentsPanel } from '../src/experiments';
import { PaiError } from '../src/errors';
import { fakeApi } from './fakes';

function trial(id: string, sequence: number, final: unknown, params: Record<string, unknown>, intermediate: unknown[] = [], state = 'SUCCEEDED'): Trial {
  return {
    id,
    sequence,
    state,
    parameters: params,
    intermediate,
    final,
    job: { name: `alice~nni_e1_${id}`, url: `/api/v2/jobs/alice~nni_e1_${id}`, state: 'SUCCEEDED' }
  };
}

const TRIALS = [
  trial('aa', 0, 12.5, { x: 1, y: 0.5 }, [0, 1]),
  trial('bb', 1, 30.25, { x: 3, y: 0.25 }, [0, 3]),
  trial('cc', 2, 21.1, { x: 2, y: 0.1, lr: 'adam' }, [0, 2]),
  trial('dd', 3, null, { x: 1, y: 0.9 }, [1], 'RUNNING')
];

function experiment(over: Partial<Experiment> = {}): Experiment {
  return {
    id: 'e1',
    name: 'search',
    username: 'alice',
    state: 'RUNNING',
    nniStatus: 'RUNNING',
    message: '',
    virtualCluster: 'default',
    createdTime: 1_700_000_000_000,
    completedTime: null,
    maxTrialNumber: 6,
    trialConcurrency: 2,
    trialCounts: { SUCCEEDED: 3, RUNNING: 1 },
    optimizeMode: 'maximize',
    bestFinal: 30.25,
    ui: '/nni/e1/',
    tuner: { name: 'TPE' },
    trials: TRIALS,
    ...over
  };
}

const flush = () => new Promise(r => setTimeout(r, 0));

describe('experiment model', () => {
  it('names the parameter columns in order of appearance', () => {
    expect(parameterKeys(TRIALS)).toEqual(['x', 'y', 'lr']);
  });

  it('finds the best trial in the tuner\'s direction', () => {
    expect(bestTrial(TRIALS)).toBe('bb');
    expect(bestTrial(TRIALS, 'minimize')).toBe('aa');
    expect(bestTrial([])).toBeNull();
  });

  it('sorts by a column with missing values last', () => {
    expect(sortTrials(TRIALS, 'final', true).map(t => t.id)).toEqual(['bb', 'cc', 'aa', 'dd']);
    expect(sortTrials(TRIALS, 'final').map(t => t.id)).toEqual(['aa', 'cc', 'bb', 'dd']);
    expect(sortTrials(TRIALS, 'param:lr').map(t => t.id)).toEqual(['cc', 'aa', 'bb', 'dd']);
    expect(sortTrials(TRIALS, 'param:x', true).map(t => t.id)).toEqual(['bb', 'cc', 'aa', 'dd']);
  });

  it('draws finals and the best so far, up or down', () => {
    const [finals, best] = finalSeries(TRIALS);
    expect(finals.points.map(p => [p.x, p.y])).toEqual([[0, 12.5], [1, 30.25], [2, 21.1]]);
    expect(best.points.map(p => p.y)).toEqual([12.5, 30.25, 30.25]);
    expect(finalSeries(TRIALS, 'minimize')[1].points.map(p => p.y)).toEqual([12.5, 12.5, 12.5]);
    const inter = intermediateSeries(TRIALS);
    expect(inter.map(s => s.name)).toEqual(['trial aa', 'trial bb', 'trial cc', 'trial dd']);
    expect(inter[1].points.map(p => [p.x, p.y])).toEqual([[1, 0], [2, 3]]);
  });

  it('scales, ticks and formats', () => {
    expect(scale([0, 10], [100, 200])(5)).toBe(150);
    expect(scale([3, 3], [0, 10])(3)).toBe(5);
    expect(ticks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(11.6, 31.2, 4)).toEqual([15, 20, 25, 30]);
    expect(ticks(2, 2)).toEqual([2]);
    expect(extent([])).toBeNull();
    expect(fmtValue(0.123456789)).toBe('0.123457');
    expect(fmtValue(3)).toBe('3');
    expect(fmtValue({ a: 1 })).toBe('{"a":1}');
    expect(fmtValue(null)).toBe('');
  });

  it('says what an experiment allows and how far it is', () => {
    expect(progressText(experiment())).toBe('3 of 6 trials done, 1 running');
    expect(progressText(experiment({ trialCounts: { SUCCEEDED: 4, FAILED: 2 } }))).toBe('6 of 6 trials done, 2 failed');
    expect(canStop(experiment())).toBe(true);
    expect(canResume(experiment())).toBe(false);
    const stopped = experiment({ state: 'STOPPED', ui: null });
    expect([canStop(stopped), canResume(stopped)]).toEqual([false, true]);
    // a DONE experiment keeps NNI (and its web UI) until stopped
    expect(canStop(experiment({ state: 'DONE' }))).toBe(true);
  });
});

describe('metricChart', () => {
  it('draws one mark per point, labelled for screen readers', () => {
    const svg = metricChart(finalSeries(TRIALS), { xLabel: 'trial', yLabel: 'final', description: 'finals' });
    expect(svg.getAttribute('role')).toBe('img');
    expect(svg.getAttribute('aria-label')).toBe('finals');
    const finals = svg.querySelector('[data-series="Final metric"]')!;
    expect(finals.querySelectorAll('circle')).toHaveLength(3);
    expect(finals.querySelector('title')!.textContent).toContain('trial aa');
    expect(svg.querySelector('.pai-Series-best polyline')).not.toBeNull();
    // y ticks are round values inside the data range
    const labels = [...svg.querySelectorAll('.pai-ChartAxes text')].map(t => t.textContent);
    expect(labels).toContain('20');
  });

  it('says so when there is nothing to draw', () => {
    const svg = metricChart(finalSeries([]), { xLabel: 'x', yLabel: 'y', description: 'd' });
    expect(svg.querySelector('.pai-ChartEmpty')!.textContent).toBe('No metrics reported yet.');
  });
});

describe('ExperimentsPanel', () => {
  it('lists my experiments with progress and best metric', async () => {
    const opened: string[] = [];
    const p = new ExperimentsPanel(fakeApi({ experiments: [experiment()] }), id => opened.push(id));
    await p.refresh();
    const cells = [...p.node.querySelectorAll('tr[data-experiment=e1] td')].map(td => td.textContent);
    expect(cells).toEqual(['searche1', 'RUNNING', '3 of 6 trials done, 1 running', '30.25']);
    (p.node.querySelector('tr[data-experiment=e1] button') as HTMLButtonElement).click();
    expect(opened).toEqual(['e1']);
  });

  it('shows how to start one when there is none, and errors in words', async () => {
    const empty = new ExperimentsPanel(fakeApi({ experiments: [] }), () => undefined);
    await empty.refresh();
    expect(empty.node.querySelector('.pai-Message')!.textContent).toContain('%pai nni create');
    const broken = new ExperimentsPanel(fakeApi({}), () => undefined);
    await broken.refresh();
    expect(broken.node.querySelector('.pai-Message')!.textContent).toContain('Cannot list experiments');
  });
});

describe('ExperimentDetail', () => {
  it('shows the trials with parameters and metrics, the best marked, sortable', async () => {
    const jobs: string[] = [];
    const uis: string[] = [];
    const d = new ExperimentDetail(fakeApi({ 'experiments/e1': experiment() }), 'e1', fw => jobs.push(fw), e => uis.push(e.id));
    await d.load();
    expect(d.node.dataset.state).toBe('RUNNING');
    const head = [...d.node.querySelectorAll('.pai-TrialsTable th')].map(th => th.textContent);
    expect(head).toEqual(['# ▲', 'Trial', 'State', 'x', 'y', 'lr', 'Final', 'Intermediate', 'Job']);
    const row = (id: string) => [...d.node.querySelectorAll(`tr[data-trial=${id}] td`)].map(td => td.textContent);
    expect(row('cc')).toEqual(['2', 'cc', 'SUCCEEDED', '2', '0.1', 'adam', '21.1', '2: 0, 2', 'SUCCEEDED']);
    expect(d.node.querySelector('tr.pai-Best')!.getAttribute('data-trial')).toBe('bb');
    // sort by final metric: best first; the header says so
    d.setSort('final');
    expect([...d.node.querySelectorAll('tbody tr[data-trial]')].map(r => r.getAttribute('data-trial'))).toEqual(['bb', 'cc', 'aa', 'dd']);
    const finalHead = [...d.node.querySelectorAll('.pai-TrialsTable th')].find(th => th.textContent!.startsWith('Final'))!;
    expect(finalHead.getAttribute('aria-sort')).toBe('descending');
    // the chart, and its tabs
    expect(d.node.querySelectorAll('.pai-ChartBox [data-series="Final metric"] circle')).toHaveLength(3);
    d.showChart('intermediate');
    expect(d.node.querySelector('.pai-ChartBox')!.getAttribute('data-kind')).toBe('intermediate');
    expect(d.node.querySelectorAll('.pai-ChartBox .pai-Series-trial')).toHaveLength(4);
    expect(d.node.querySelector('[role=tab][aria-selected=true]')!.textContent).toBe('Intermediate metrics');
    // a trial's job, and the NNI web UI
    (d.node.querySelector('tr[data-trial=aa] button.pai-Link') as HTMLButtonElement).click();
    expect(jobs).toEqual(['alice~nni_e1_aa']);
    (d.node.querySelector('.pai-OpenNni') as HTMLButtonElement).click();
    expect(uis).toEqual(['e1']);
  });

  it('stops, then offers resume; a refused action is said in words', async () => {
    const sent: string[] = [];
    const stopped = experiment({ state: 'STOPPED', ui: null, nniStatus: 'STOPPED' });
    const routes: Record<string, any> = { 'experiments/e1': experiment(), 'PUT experiments/e1/executionType': stopped };
    const d = new ExperimentDetail(fakeApi(routes, sent), 'e1', () => undefined, () => undefined);
    await d.load();
    const stop = d.node.querySelector('.pai-StopExperiment') as HTMLButtonElement;
    const resume = d.node.querySelector('.pai-ResumeExperiment') as HTMLButtonElement;
    const ui = d.node.querySelector('.pai-OpenNni') as HTMLButtonElement;
    expect([stop.disabled, resume.disabled, ui.disabled]).toEqual([false, true, false]);
    routes['experiments/e1'] = stopped;
    await d.execute('STOP');
    expect(JSON.parse(sent[0])).toEqual({ value: 'STOP' });
    expect([stop.disabled, resume.disabled, ui.disabled]).toEqual([true, false, true]);
    routes['PUT experiments/e1/executionType'] = new PaiError(503, 'NniUnavailableError', 'NNI 3.0 is not installed');
    await d.execute('RESUME');
    await flush();
    expect(d.node.querySelector('.pai-Message')!.textContent).toBe('Cannot resume the experiment: NNI 3.0 is not installed');
    expect(resume.disabled).toBe(false);
  });
});

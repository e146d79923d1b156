/** The panels' periodic refreshes (`@lumino/polling`): on while shown, standing by while hidden,
 * backing off after failures, gone with the widget. Timers are vitest's fake ones. */
import { Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { PaiError } from '../src/errors';
import { ExperimentDetail } from '../src/experiments';
import { JobDetail, JobsPanel } from '../src/jobs';
import { MarketPanel } from '../src/market';
import { widgetPoll } from '../src/polling';
import { PaiStatus } from '../src/status';
import { SubmitPanel } from '../src/submit';
import { fakeApi } from './fakes';

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  document.body.replaceChildren();
});

/** Let `ms` of fake time pass, settling the promises the timers start. A poll's ticks drift by a
 * millisecond or two (a timer set while fake timers run waits at least 1 ms), so the tests look at
 * the counts between ticks, never at a tick's exact time. */
const pass = (ms: number) => vi.advanceTimersByTimeAsync(ms);
/** Let the ticks due now (an immediate refresh) happen. */
const settle = () => pass(20);

function attached<T extends Widget>(w: T): T {
  Widget.attach(w, document.body);
  return w;
}

/** Hide `widget` a while: `count()` (its refreshes) stays; show it: one refresh at once. */
async function expectRestWhileHidden(widget: Widget, count: () => number): Promise<void> {
  const before = count();
  widget.hide(); // a collapsed sidebar, a tab behind another
  await pass(5000);
  expect(count()).toBe(before);
  widget.show();
  await settle();
  expect(count()).toBe(before + 1); // no stale view for up to an interval
}

describe('widgetPoll', () => {
  it('refreshes while the widget is shown, stands by while hidden, and catches up when shown', async () => {
    const w = attached(new Widget());
    let calls = 0;
    widgetPoll(w, async () => void calls++, { name: 'test', interval: 1000 });
    await settle();
    expect(calls).toBe(1); // at once
    await pass(3000);
    expect(calls).toBe(4);
    await expectRestWhileHidden(w, () => calls);
    await pass(1000);
    expect(calls).toBe(6);
  });

  it('backs off while refreshes fail, and comes back to its pace when they succeed', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const w = attached(new Widget());
    let calls = 0;
    let failing = true;
    const poll = widgetPoll(
      w,
      async () => {
        calls++;
        if (failing) {
          throw new Error('PAI is down');
        }
      },
      { name: 'test', interval: 1000 }
    );
    await pass(30_000);
    // without backoff 31 calls; with it the waits grow (by 1.5-3x here) up to 30 s
    expect(calls).toBeLessThan(10);
    expect(poll.state.phase).toBe('rejected');
    expect(poll.state.interval).toBeGreaterThan(5000);
    failing = false;
    await pass(30_000);
    const recovered = calls;
    await pass(3000);
    expect(calls).toBe(recovered + 3);
  });

  it('is disposed with the widget', async () => {
    const w = attached(new Widget());
    let calls = 0;
    const poll = widgetPoll(w, async () => void calls++, { name: 'test', interval: 1000 });
    await settle();
    w.dispose();
    expect(poll.isDisposed).toBe(true);
    await pass(5000);
    expect(calls).toBe(1);
  });

  it('does not wake a poll that was stopped, or never started, when the widget is shown', async () => {
    const w = attached(new Widget());
    let calls = 0;
    const poll = widgetPoll(w, async () => void calls++, { name: 'test', interval: 1000, auto: false });
    w.hide();
    w.show();
    await pass(3000);
    expect(calls).toBe(0);
    void poll.start();
    await settle();
    void poll.stop();
    w.hide();
    w.show();
    await pass(3000);
    expect(calls).toBe(1);
  });
});

function countingGet(routes: Record<string, any>) {
  const api = fakeApi(routes);
  const calls: string[] = [];
  const get = api.get;
  api.get = async (path: string) => {
    calls.push(path);
    return get(path);
  };
  return { api, calls };
}

describe('the panels refresh on a poll', () => {
  it('JobsPanel: every refreshMs while shown, not while hidden, backing off on errors', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const page = 'jobs?offset=0&limit=50&withTotalCount=true';
    const routes: Record<string, any> = { [page]: { totalCount: 0, data: [] }, 'virtual-clusters': {} };
    const { api, calls: asked } = countingGet(routes);
    const calls = { get length() { return asked.filter(a => a.startsWith('jobs')).length; } };
    const p = attached(new JobsPanel(api, () => undefined, 1000));
    await settle();
    await pass(2000);
    expect(calls).toHaveLength(3);
    expect(asked.filter(a => a === 'virtual-clusters')).toHaveLength(1); // the VC choices are read once
    await expectRestWhileHidden(p, () => calls.length);
    delete routes[page]; // the list fails: said in the panel, asked for less often
    await pass(10_000);
    expect(p.node.querySelector('.pai-Message')!.textContent).toContain('Cannot list jobs');
    expect(calls.length).toBeLessThan(9);
    expect(p.poll.state.phase).toBe('rejected');
    p.dispose();
    const before = calls.length;
    await pass(60_000);
    expect(calls).toHaveLength(before);
  });

  it('PaiStatus: counts my jobs on a poll, says when PAI is unavailable, rests while hidden', async () => {
    const routes: Record<string, any> = {
      'jobs?state=RUNNING,WAITING': [{ name: 'a', username: 'u', state: 'RUNNING', virtualCluster: 'd', totalGpuNumber: 2, totalTaskNumber: 1 }]
    };
    const { api, calls } = countingGet(routes);
    const s = attached(new PaiStatus(api, () => undefined, 1000));
    await settle();
    expect(s.node.textContent).toBe('PAI: 1 running · 2 GPUs');
    await pass(2000);
    expect(calls).toHaveLength(3);
    delete routes['jobs?state=RUNNING,WAITING'];
    await pass(1000);
    expect(s.node.textContent).toBe('PAI: unavailable');
    s.hide(); // e.g. the status bar turned off
    const before = calls.length;
    await pass(60_000);
    expect(calls).toHaveLength(before);
    s.dispose();
    expect(s.poll.isDisposed).toBe(true);
  });

  it('ExperimentDetail: follows a running experiment while shown, stops once it ended, follows again on resume', async () => {
    const routes: Record<string, any> = { 'experiments/e1': { id: 'e1', name: 'n', state: 'RUNNING', trials: [] } };
    const { api, calls } = countingGet(routes);
    const d = attached(new ExperimentDetail(api, 'e1', () => undefined, () => undefined, 1000));
    const started = d.start();
    await settle();
    await started;
    expect(d.node.dataset.state).toBe('RUNNING');
    await pass(2000);
    expect(calls).toHaveLength(3);
    await expectRestWhileHidden(d, () => calls.length);
    routes['experiments/e1'] = { id: 'e1', name: 'n', state: 'STOPPED', trials: [] };
    await pass(1000);
    expect(d.node.dataset.state).toBe('STOPPED');
    await pass(5000);
    expect(calls).toHaveLength(5); // ended: the record no longer changes
    routes['PUT experiments/e1/executionType'] = { id: 'e1', state: 'RUNNING' };
    routes['experiments/e1'] = { id: 'e1', name: 'n', state: 'RUNNING', trials: [] };
    await d.execute('RESUME');
    const resumed = calls.length;
    await pass(2000);
    expect(calls.length).toBeGreaterThanOrEqual(resumed + 2);
    d.dispose();
  });
});

describe('JobDetail follows the log', () => {
  function job(state: string) {
    return {
      jobStatus: { state },
      taskRoles: {
        worker: { taskStatuses: [{ taskIndex: 0, taskState: state, containerLog: '/api/v2/jobs/alice~j/tasks/worker/0/logs' }] }
      }
    };
  }

  function logApi(routes: Record<string, any>) {
    const api = fakeApi(routes);
    const reads: string[] = [];
    let n = 0;
    api.text = async (path: string) => {
      reads.push(path);
      if (routes.logFails) {
        throw new PaiError(502, 'ConnectionError', 'cannot reach PAI');
      }
      n += 1;
      return { text: `line ${n}\n`, offset: n * 7 };
    };
    return { api, reads };
  }

  /** A running job's tab, shown, its log followed every second (the first read done). */
  async function runningJobTab() {
    const routes: Record<string, any> = { 'jobs/alice~j': job('RUNNING') };
    const { api, reads } = logApi(routes);
    const d = attached(new JobDetail(api, 'alice~j', () => undefined, 1000));
    await d.load();
    await settle();
    return { routes, reads, d };
  }

  it('reads while the job runs, once more after it ended, then stops', async () => {
    const { routes, reads, d } = await runningJobTab();
    expect(reads).toEqual(['jobs/alice~j/tasks/worker/0/logs/all?offset=0']);
    await pass(2000);
    expect(reads.at(-1)).toBe('jobs/alice~j/tasks/worker/0/logs/all?offset=14');
    expect(d.node.querySelector('.pai-Log')!.textContent).toBe('line 1\nline 2\nline 3\n');
    routes['jobs/alice~j'] = job('SUCCEEDED');
    await d.load();
    await pass(5000);
    expect(reads).toHaveLength(5); // the last lines, once, and no more
    expect(d.logPoll.state.phase).toBe('stopped');
    d.dispose();
  });

  it('stands by while the tab is hidden, backs off while reads fail, stops when Follow is unticked', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const { routes, reads, d } = await runningJobTab();
    await expectRestWhileHidden(d, () => reads.length);
    routes.logFails = true;
    await pass(10_000);
    expect(reads.length).toBeLessThan(7);
    expect(d.node.querySelector('.pai-Log')!.getAttribute('data-error')).toBe('cannot reach PAI');
    routes.logFails = false;
    const follow = d.node.querySelector('.pai-Follow') as HTMLInputElement;
    follow.checked = false;
    follow.dispatchEvent(new Event('change'));
    await settle();
    const stopped = reads.length;
    await pass(10_000);
    expect(reads).toHaveLength(stopped);
    expect(d.logPoll.state.phase).toBe('stopped');
    d.dispose();
  });
});

describe('typing is checked once it pauses', () => {
  /** Type `values` into `input` one after the other, `pauseMs` apart. */
  async function typeInto(input: HTMLInputElement, values: string[], pauseMs: number): Promise<void> {
    for (const v of values) {
      input.value = v;
      input.dispatchEvent(new Event('input'));
      await pass(pauseMs);
    }
  }

  it('MarketPanel searches once per pause', async () => {
    const { api, calls } = countingGet({ 'marketplace/items?keyword=abc': [] });
    const p = new MarketPanel(api, () => undefined);
    await typeInto(p.node.querySelector('input[type=search]') as HTMLInputElement, ['a', 'ab', 'abc'], 100);
    expect(calls).toHaveLength(0);
    await pass(250);
    expect(calls).toEqual(['marketplace/items?keyword=abc']);
    p.dispose();
  });

  it('SubmitPanel validates once per pause, and not after the panel closed', async () => {
    const posted: string[] = [];
    const p = new SubmitPanel(fakeApi({ 'POST jobs?dryRun=true': { status: 200 }, 'POST jobs': { status: 202 } }, posted), () => undefined, 600);
    const name = p.node.querySelector('input[name=name]') as HTMLInputElement;
    await typeInto(name, ['j', 'jo', 'job'], 200);
    expect(posted).toHaveLength(0);
    await pass(600);
    expect(posted).toHaveLength(1);
    void typeInto(name, ['job2'], 0);
    p.dispose();
    await pass(1000);
    expect(posted).toHaveLength(1);
  });
});

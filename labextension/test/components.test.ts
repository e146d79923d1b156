import * as jsyaml from 'js-yaml';
import { Widget } from '@lumino/widgets';
import { describe, expect, it } from 'vitest';

import { JobsPanel } from '../src/jobs';
import { MarketPanel } from '../src/market';
import { SubmitPanel } from '../src/submit';
import { PaiError } from '../src/errors';
import { fakeApi } from './fakes';

const flush = () => new Promise(r => setTimeout(r, 0));

/** A job list server: answers `jobs?…` one page at a time, filtered as the REST API does, and
 * records every path asked. */
function pagedJobs(jobs: any[], asked: string[]) {
  const api = fakeApi({ 'virtual-clusters': { default: {}, research: {}, idle: {} } });
  const get = api.get;
  api.get = async (path: string) => {
    asked.push(path);
    if (!path.startsWith('jobs?')) {
      return get(path);
    }
    const q = new URLSearchParams(path.slice('jobs?'.length));
    const keyword = (q.get('keyword') ?? '').toLowerCase();
    const hits = jobs.filter(
      j =>
        (!q.get('state') || j.state === q.get('state')) &&
        (!q.get('vc') || j.virtualCluster === q.get('vc')) &&
        (!keyword || j.name.toLowerCase().includes(keyword))
    );
    const offset = Number(q.get('offset'));
    const data = hits.slice(offset, offset + Number(q.get('limit')));
    return q.get('withTotalCount') === 'true' ? { totalCount: hits.length, data } : data;
  };
  return api;
}

const manyJobs = Array.from({ length: 120 }, (_, i) => ({
  name: `job-${String(i).padStart(3, '0')}`,
  username: 'alice',
  state: i % 2 ? 'FAILED' : 'RUNNING',
  virtualCluster: i < 100 ? 'default' : 'research',
  totalGpuNumber: 1,
  totalTaskNumber: 2
}));

describe('JobsPanel', () => {
  it('lists my jobs with GPU and task counts; a row opens the job', async () => {
    const opened: string[] = [];
    const jobs = [
      { name: 'a', username: 'alice', state: 'RUNNING', virtualCluster: 'default', totalGpuNumber: 2, totalTaskNumber: 3 },
      { name: 'b', username: 'alice', state: 'FAILED', virtualCluster: 'research', totalGpuNumber: 0, totalTaskNumber: 1 }
    ];
    const p = new JobsPanel(pagedJobs(jobs, []), fw => opened.push(fw));
    await p.refresh();
    const rows = p.node.querySelectorAll('tbody tr');
    expect(rows).toHaveLength(2);
    expect([...rows[0].querySelectorAll('td')].map(td => td.textContent)).toEqual(['a', 'RUNNING', 'default', '2', '3']);
    (rows[1].querySelector('button') as HTMLButtonElement).click();
    expect(opened).toEqual(['alice~b']);
    // every control is labelled
    for (const el of p.node.querySelectorAll('select, input, button:not(.pai-Link)')) {
      expect(el.getAttribute('aria-label') ?? el.textContent).toBeTruthy();
    }
  });

  it('asks the server for one page at a time and pages to the last job', async () => {
    const asked: string[] = [];
    const p = new JobsPanel(pagedJobs(manyJobs, asked), () => undefined);
    await p.refresh();
    const info = p.node.querySelector('.pai-PageInfo') as HTMLElement;
    const prev = p.node.querySelector('.pai-PagePrev') as HTMLButtonElement;
    const next = p.node.querySelector('.pai-PageNext') as HTMLButtonElement;
    expect(asked).toEqual(['virtual-clusters', 'jobs?offset=0&limit=50&withTotalCount=true']);
    expect(p.node.querySelectorAll('tbody tr')).toHaveLength(50);
    expect(info.textContent).toBe('1–50 of 120');
    expect(prev.disabled).toBe(true);
    next.click();
    await flush();
    next.click();
    await flush();
    expect(asked.slice(2)).toEqual([
      'jobs?offset=50&limit=50&withTotalCount=true',
      'jobs?offset=100&limit=50&withTotalCount=true'
    ]);
    expect(info.textContent).toBe('101–120 of 120');
    expect(next.disabled).toBe(true);
    const names = [...p.node.querySelectorAll('tbody tr')].map(r => r.getAttribute('data-job'));
    expect(names).toHaveLength(20);
    expect(names[19]).toBe('alice~job-119'); // the last job
    // a refresh (the poll's work) reads only the page shown
    await p.refresh();
    expect(asked.at(-1)).toBe('jobs?offset=100&limit=50&withTotalCount=true');
    prev.click();
    await flush();
    expect(info.textContent).toBe('51–100 of 120');
  });

  it('filters on the server (back to the first page); VC choices come from the VC list', async () => {
    const asked: string[] = [];
    const p = new JobsPanel(pagedJobs(manyJobs, asked), () => undefined, 5000, 50, 0);
    await p.refresh();
    const vc = p.node.querySelector('select.pai-Filter-vc') as HTMLSelectElement;
    expect([...vc.options].map(o => o.value)).toEqual(['', 'default', 'idle', 'research']); // idle has no job
    await p.goTo(50);
    vc.value = 'research';
    vc.dispatchEvent(new Event('change'));
    await flush();
    expect(asked.at(-1)).toBe('jobs?offset=0&limit=50&withTotalCount=true&vc=research');
    expect(p.node.querySelectorAll('tbody tr')).toHaveLength(20);
    const state = p.node.querySelector('select.pai-Filter-state') as HTMLSelectElement;
    state.value = 'FAILED';
    state.dispatchEvent(new Event('change'));
    await flush();
    expect((p.node.querySelector('.pai-PageInfo') as HTMLElement).textContent).toBe('1–10 of 10');
    const name = p.node.querySelector('input.pai-Filter-name') as HTMLInputElement;
    name.value = 'no-such-job';
    name.dispatchEvent(new Event('input'));
    await new Promise(r => setTimeout(r, 5));
    await flush();
    expect(asked.at(-1)).toBe('jobs?offset=0&limit=50&withTotalCount=true&state=FAILED&vc=research&keyword=no-such-job');
    expect(p.node.querySelectorAll('tbody tr')).toHaveLength(0);
    expect((p.node.querySelector('.pai-Message') as HTMLElement).textContent).toBe('No job matches the filters.');
    // every request asked for one page, never the whole list
    expect(asked.filter(a => a.startsWith('jobs')).every(a => a.includes('limit=50'))).toBe(true);
  });
});

describe('SubmitPanel', () => {
  const routes = {
    'users/me': { username: 'alice', virtualCluster: ['default', 'research'] },
    'cluster/sku-types?vc=default': { V100: { cpu: 4, memory: 8192, gpu: 1 } },
    'tokens/check': { username: 'alice' }
  };

  it('offers only my VCs and their SKUs; every field has a label', async () => {
    const p = new SubmitPanel(fakeApi(routes));
    await p.loadChoices();
    const vc = p.node.querySelector('select[name=virtualCluster]') as HTMLSelectElement;
    expect([...vc.options].map(o => o.value)).toEqual(['default', 'research']);
    const sku = p.node.querySelector('select[name=sku]') as HTMLSelectElement;
    expect([...sku.options].map(o => o.value)).toEqual(['', 'V100']);
    for (const el of p.node.querySelectorAll('.pai-FormPane input, .pai-FormPane select, .pai-FormPane textarea')) {
      expect(p.node.querySelector(`label[for="${el.id}"]`)).not.toBeNull();
    }
  });

  it('shows a server error at the field it names', async () => {
    const err = new PaiError(400, 'InvalidProtocolError', 'taskRoles.worker.resourcePerInstance.gpu: too many');
    const p = new SubmitPanel(fakeApi({ ...routes, 'POST jobs': err }));
    p.setForm({ ...p.form, name: 'j', command: 'true' });
    expect(await p.submit()).toBe(false);
    expect(p.node.querySelector('[data-field-error=gpu]')!.textContent).toContain('too many');
    expect(p.node.querySelector('input[name=gpu]')!.getAttribute('aria-invalid')).toBe('true');
  });

  it('checks fields locally first, then submits the YAML and reports the job', async () => {
    const posted: string[] = [];
    const done: string[] = [];
    const p = new SubmitPanel(fakeApi({ ...routes, 'POST jobs': { status: 202 } }, posted), fw => done.push(fw));
    expect(await p.submit()).toBe(false); // no name, no command
    expect(p.node.querySelector('[data-field-error=name]')!.textContent).not.toBe('');
    expect(posted).toHaveLength(0);
    p.setForm({ ...p.form, name: 'ok', command: 'echo hi' });
    expect(await p.submit()).toBe(true);
    expect(posted[0]).toContain('name: ok');
    expect(done).toEqual(['alice~ok']);
  });

  it('submits the edited YAML as written', async () => {
    const posted: string[] = [];
    const p = new SubmitPanel(fakeApi({ ...routes, 'POST jobs': { status: 202 } }, posted));
    p.showTab('yaml');
    const ta = p.node.querySelector('textarea.pai-Yaml') as HTMLTextAreaElement;
    ta.value = 'protocolVersion: 2\nname: edited\n';
    ta.dispatchEvent(new Event('input'));
    await p.submit();
    expect(posted[0]).toBe('protocolVersion: 2\nname: edited\n');
  });

  it('validates live with a dry run, showing errors only at the fields I touched', async () => {
    const posted: string[] = [];
    const r: Record<string, any> = {
      ...routes,
      'POST jobs?dryRun=true': new PaiError(400, 'InvalidProtocolError', 'taskRoles.worker.resourcePerInstance.gpu: 64 GPUs, more than the 4 of VC default')
    };
    const p = new SubmitPanel(fakeApi(r, posted), () => undefined, 0);
    const gpu = p.node.querySelector('input[name=gpu]') as HTMLInputElement;
    const name = p.node.querySelector('input[name=name]') as HTMLInputElement;
    name.value = 'live';
    name.dispatchEvent(new Event('input'));
    expect(await p.validate()).toBe(false);
    expect(p.node.querySelector('[data-field-error=gpu]')!.textContent).toBe(''); // not touched yet
    gpu.value = '64';
    gpu.dispatchEvent(new Event('input'));
    expect(await p.validate()).toBe(false);
    expect(p.node.querySelector('[data-field-error=gpu]')!.textContent).toContain('more than the 4');
    expect(posted.at(-1)).toContain('gpu: 64');
    r['POST jobs?dryRun=true'] = { status: 200, dryRun: true, totalTaskNumber: 1, totalGpuNumber: 2, virtualCluster: 'default' };
    gpu.value = '2';
    gpu.dispatchEvent(new Event('input'));
    expect(await p.validate()).toBe(true);
    expect(p.node.querySelector('[data-field-error=gpu]')!.textContent).toBe('');
    expect(p.node.querySelector('.pai-Validity')!.textContent).toBe('✓ Valid: 1 task, 2 GPUs in default.');
    // a YAML syntax error is found here, without asking the server
    const calls = posted.length;
    p.showTab('yaml');
    const ta = p.node.querySelector('textarea.pai-Yaml') as HTMLTextAreaElement;
    ta.value = 'name: [unclosed';
    ta.dispatchEvent(new Event('input'));
    expect(await p.validate()).toBe(false);
    expect(p.node.querySelector('[data-field-error=yaml]')!.textContent).toContain('cannot be read');
    expect(posted).toHaveLength(calls);
  });

  it('carries parameters and secrets, and saves a template without the secrets', async () => {
    const posted: string[] = [];
    const p = new SubmitPanel(fakeApi({ ...routes, 'POST marketplace/items': { id: 7 } }, posted));
    p.setForm({ ...p.form, name: 'tpl', command: 'echo <% $parameters.lr %> <% $secrets.key %>', parameters: 'lr=0.1', secrets: 'key=s3cret' });
    const doc = jsyaml.load(p.protocolText()) as any;
    expect(doc.parameters).toEqual({ lr: '0.1' });
    expect(doc.secrets).toEqual({ key: 's3cret' });
    expect(await p.saveTemplate()).toBe(true);
    const body = JSON.parse(posted[0]);
    expect(body).toMatchObject({ name: 'tpl', type: 'template', visibility: 'private' });
    expect(body.protocol).not.toContain('s3cret');
    expect(body.protocol).toContain('<% $secrets.key %>');
    expect(p.node.querySelector('.pai-Result')!.textContent).toContain('Secrets left out (give them when you use it): key');
    // a bad line is named before anything is sent
    p.setForm({ ...p.form, parameters: 'no equals sign' });
    expect(await p.submit()).toBe(false);
    expect(p.node.querySelector('[data-field-error=parameters]')!.textContent).toContain('line 1');
  });

  it('takes a docker image item from the marketplace', () => {
    const p = new SubmitPanel(fakeApi(routes));
    p.useItem({ id: '1', name: 'team-py', author: 'bob', type: 'dockerimage' });
    expect(p.protocolText()).toContain('marketplace: team-py');
    expect((p.node.querySelector('input[name=image]') as HTMLInputElement).disabled).toBe(true);
  });
});

describe('MarketPanel', () => {
  it('searches with type and tag and opens an item to use', async () => {
    const used: string[] = [];
    const calls: string[] = [];
    const api = fakeApi({});
    api.get = async (path: string) => {
      calls.push(path);
      if (path.startsWith('marketplace/items?') || path === 'marketplace/items') {
        return [{ id: '1', name: 'img', author: 'a', type: 'dockerimage', summary: 's' }];
      }
      if (path === 'marketplace/items/img') {
        return { id: '1', name: 'img', author: 'a', type: 'dockerimage', tags: [{ name: 't1' }], protocol: 'uri: x' };
      }
      return [];
    };
    const p = new MarketPanel(api, it => used.push(it.name));
    Widget.attach(p, document.body);
    (p.node.querySelector('select[aria-label="Item type"]') as HTMLSelectElement).value = 'dockerimage';
    await p.refresh();
    expect(calls).toContain('marketplace/items?type=dockerimage');
    (p.node.querySelector('li[data-item=img] button') as HTMLButtonElement).click();
    await flush();
    await flush();
    expect(p.node.querySelector('.pai-Tag')!.textContent).toBe('t1');
    (p.node.querySelector('.pai-UseItem') as HTMLButtonElement).click();
    expect(used).toEqual(['img']);
    Widget.detach(p);
  });
});

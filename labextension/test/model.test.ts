import * as jsyaml from 'js-yaml';
import { describe, expect, it } from 'vitest';

import {
  applyItem,
  checkForm,
  commandForFile,
  defaultForm,
  errorField,
  exitInfo,
  formToProtocol,
  formToYaml,
  jobsQuery,
  jobNameFor,
  notebookToPython,
  pageLabel,
  parseKeyValues,
  parseSSE,
  proxiedPath,
  taskRows,
  templateText,
  usage,
  usageText,
  yamlToForm
} from '../src/model';

const job = (name: string, state: string, vc = 'default', gpu = 0) => ({
  name,
  username: 'alice',
  state,
  virtualCluster: vc,
  totalGpuNumber: gpu,
  totalTaskNumber: 1
});

describe('job list', () => {
  const jobs = [job('train-a', 'RUNNING', 'default', 2), job('train-b', 'FAILED', 'research', 1), job('eval', 'RUNNING', 'research', 1)];
  it('asks the server for one page, filtered by state, VC and name', () => {
    expect(jobsQuery({ state: '', vc: '', name: '' }, 0, 50)).toBe('jobs?offset=0&limit=50&withTotalCount=true');
    expect(jobsQuery({ state: 'RUNNING', vc: 'research', name: ' train b ' }, 100, 50)).toBe(
      'jobs?offset=100&limit=50&withTotalCount=true&state=RUNNING&vc=research&keyword=train+b'
    );
    expect(pageLabel(100, 20, 120)).toBe('101–120 of 120');
    expect(pageLabel(0, 0, 0)).toBe('0 of 0');
  });
  it('counts running jobs and their GPUs for the status bar', () => {
    expect(usage(jobs)).toEqual({ running: 2, gpus: 3, waiting: 0 });
    expect(usageText({ running: 1, gpus: 1, waiting: 2 })).toBe('PAI: 1 running · 1 GPU · 2 waiting');
  });
});

describe('submission form', () => {
  it('generates a protocol v2 job and reads it back', () => {
    const f = { ...defaultForm(), name: 'j1', virtualCluster: 'research', sku: 'V100', gpu: 2, instances: 3,
      command: 'echo a\n\npython3 x.py', debugMinutes: 5 };
    const p = formToProtocol(f);
    expect(p.protocolVersion).toBe(2);
    expect(p.taskRoles.worker.commands).toEqual(['echo a', 'python3 x.py']);
    expect(p.taskRoles.worker.resourcePerInstance.gpu).toBe(2);
    expect(p.defaults.virtualCluster).toBe('research');
    expect(p.extras.hivedScheduler.taskRoles.worker.skuType).toBe('V100');
    expect(p.extras.debugReservation.minutes).toBe(5);
    const back = yamlToForm(formToYaml(f), defaultForm());
    expect(back).toEqual({ ...f, command: 'echo a\npython3 x.py', imageItem: undefined });
  });
  it('reads KEY=value lines for parameters and secrets', () => {
    expect(parseKeyValues('a=1\n\n# note\nB_2 = x=y ')).toEqual({ values: { a: '1', B_2: 'x=y' } });
    expect(parseKeyValues('ok=1\n9bad=2').error).toContain('line 2');
    const f = { ...defaultForm(), name: 'p', command: 'x', parameters: 'lr=0.1', secrets: 'token=t0p' };
    const back = yamlToForm(formToYaml(f), defaultForm());
    expect([back.parameters, back.secrets]).toEqual(['lr=0.1', 'token=t0p']);
    expect(checkForm({ ...f, secrets: 'oops' }).secrets).toContain('line 1');
    expect(errorField('secrets.token: must be a string')).toBe('secrets');
    expect(errorField('Job alice~p already exists.')).toBe('name');
  });

  it('turns a job into a template without secret values', () => {
    const t = templateText('name: j\nsecrets: {k: v}\ntaskRoles: {w: {commands: ["echo <% $secrets.k %>"]}}\n');
    expect(t.removedSecrets).toEqual(['k']);
    expect(jsyaml.load(t.text)).toEqual({ name: 'j', taskRoles: { w: { commands: ['echo <% $secrets.k %>'] } } });
  });

  it('uses a marketplace image by reference', () => {
    const p = formToProtocol({ ...defaultForm(), name: 'j', command: 'x', imageItem: 'team-py' });
    expect(p.prerequisites[0]).toEqual({ name: 'image', type: 'dockerimage', marketplace: 'team-py' });
  });
  it('checks fields before sending', () => {
    const e = checkForm({ ...defaultForm(), name: 'bad name', instances: 0, command: ' ' });
    expect(Object.keys(e).sort()).toEqual(['command', 'instances', 'name']);
    expect(checkForm({ ...defaultForm(), name: 'ok', command: 'true' })).toEqual({});
  });
  it('puts server errors at the field they name', () => {
    expect(errorField('taskRoles.worker.resourcePerInstance.gpu: must be an integer ≥ 0, got -1')).toBe('gpu');
    expect(errorField('taskRoles.worker.resourcePerInstance: needs 64 GPUs, the VC has 4')).toBe('gpu');
    expect(errorField("defaults.virtualCluster: virtual cluster 'x' does not exist")).toBe('virtualCluster');
    expect(errorField('User alice is not allowed to do operation in research')).toBe('virtualCluster');
    expect(errorField('name: must match ^[A-Za-z0-9_-]+$')).toBe('name');
    expect(errorField('prerequisites[0].marketplace: no item "x" visible to you')).toBe('image');
    expect(errorField('taskRoles.worker.commands: required')).toBe('command');
    expect(errorField('the job protocol must be UTF-8 text')).toBe('yaml');
  });
});

describe('files to jobs', () => {
  it('embeds a script and runs it', () => {
    const cmd = commandForFile('dir/train me.py', 'print("é")\n');
    const [write, run] = cmd.split('\n');
    expect(run).toBe('python3 train_me.py');
    const b64 = write.split(' ')[1];
    expect(new TextDecoder().decode(Uint8Array.from(atob(b64), c => c.charCodeAt(0)))).toBe('print("é")\n');
    expect(commandForFile('a.sh', 'echo').split('\n')[1]).toBe('bash a.sh');
    expect(commandForFile('nb.ipynb', 'x').split('\n')[1]).toBe('python3 nb.py');
  });
  it('turns a notebook into Python, magics commented out', () => {
    const nb = { cells: [
      { cell_type: 'markdown', source: ['# title'] },
      { cell_type: 'code', source: ['%matplotlib inline\n', 'x = 1'] },
      { cell_type: 'code', source: '!pip list\nprint(x)' }
    ] };
    expect(notebookToPython(nb)).toBe('# %matplotlib inline\nx = 1\n\n# !pip list\nprint(x)');
  });
  it('names jobs after the file', () => {
    expect(jobNameFor('a/b/my train.ipynb', new Date('2026-01-02T03:04:05Z'))).toBe('my-train-20260102030405');
  });
});

describe('job detail', () => {
  const detail = {
    jobStatus: { state: 'FAILED', appExitType: 'USER', appExitSpec: { type: 'USER_FAILURE', phrase: 'Exit 1',
      reason: 'user code failed', solution: ['check the log', 'fix'] } },
    taskRoles: { worker: { taskStatuses: [
      { taskIndex: 0, taskState: 'FAILED', subState: 'DEBUGGING', containerNodeName: 'n1', containerGpus: '2,3',
        containerExitCode: 1, containerLog: '/api/v2/jobs/a~j/attempts/0/taskRoles/worker/taskIndex/0/attempts/0/logs',
        debugUntil: 5 }
    ] } }
  };
  it('lists tasks with nodes and GPUs', () => {
    expect(taskRows(detail)).toEqual([{ role: 'worker', index: 0, state: 'FAILED', subState: 'DEBUGGING', node: 'n1',
      gpus: '2,3', exitCode: 1, logPath: detail.taskRoles.worker.taskStatuses[0].containerLog, debugUntil: 5 }]);
  });
  it('shows the failure category and resolution', () => {
    expect(exitInfo(detail)).toEqual({ category: 'USER_FAILURE', phrase: 'Exit 1', reason: 'user code failed',
      solution: 'check the log; fix' });
    expect(exitInfo({ jobStatus: { state: 'RUNNING' } })).toBeNull();
  });
  it('maps PAI paths to the extension', () => {
    expect(proxiedPath('/api/v2/jobs/a~j/logs')).toBe('jobs/a~j/logs');
    expect(proxiedPath('/rest-server/api/v2/jobs/a~j')).toBe('jobs/a~j');
  });
  it('parses server-sent events across chunks', () => {
    const a = parseSSE(': keep-alive\n\ndata: {"reason":"JobSubmitted"}\n\nevent: end\ndata: {"st');
    expect(a.events).toEqual([{ event: 'message', data: '{"reason":"JobSubmitted"}' }]);
    const b = parseSSE(a.rest + 'ate":"SUCCEEDED"}\n\n');
    expect(b.events).toEqual([{ event: 'end', data: '{"state":"SUCCEEDED"}' }]);
    expect(b.rest).toBe('');
  });
});

describe('marketplace items', () => {
  it('a template fills the form and the YAML', () => {
    const protocol = jsyaml.dump({ protocolVersion: 2, name: 'tpl', type: 'job',
      prerequisites: [{ name: 'img', type: 'dockerimage', uri: 'pytorch:2' }],
      taskRoles: { train: { instances: 2, dockerImage: 'img', resourcePerInstance: { gpu: 1, cpu: 4, memoryMB: 8192 },
        commands: ['python train.py'] } } });
    const { form, yaml } = applyItem(defaultForm(), { id: '1', name: 'tpl', author: 'x', type: 'template', protocol });
    expect(form.instances).toBe(2);
    expect(form.image).toBe('pytorch:2');
    expect(form.command).toBe('python train.py');
    expect(form.name).toMatch(/^tpl-\d{14}$/);
    expect((jsyaml.load(yaml!) as any).taskRoles.train.instances).toBe(2);
  });
  it('a data item becomes a marketplace prerequisite', () => {
    const { yaml } = applyItem({ ...defaultForm(), name: 'j', command: 'x' },
      { id: '1', name: 'mnist-data', author: 'x', type: 'data' });
    expect((jsyaml.load(yaml!) as any).prerequisites[1]).toEqual({ name: 'mnist_data', type: 'data', marketplace: 'mnist-data' });
  });
});

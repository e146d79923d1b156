/**
 * Pure logic of the PAI panels (no DOM, no JupyterLab): what the job list shows, the protocol the
 * submission form generates, where a server error belongs, how a file becomes a job command.
 */
import * as jsyaml from 'js-yaml';

import { buildJobDocument, JobDescription } from './jobdoc';

export interface JobSummary {
  name: string;
  username: string;
  state: string;
  subState?: string | null;
  virtualCluster: string;
  totalGpuNumber: number;
  totalTaskNumber: number;
  submissionTime?: number | null;
  waitingReason?: string | null;
  [key: string]: unknown;
}

export interface JobFilter {
  state: string; // '' = any
  vc: string; // '' = any
  name: string; // substring, case-insensitive
}

export const JOB_STATES = ['WAITING', 'RUNNING', 'STOPPING', 'SUCCEEDED', 'FAILED', 'STOPPED'];
export const FINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);

export function frameworkName(job: { username: string; name: string }): string {
  return `${job.username}~${job.name}`;
}

/** One page of my jobs as the server's query: the filters are the server's (state, VC, and the name
 * as OpenPAI's `keyword`), so the panel never loads more than a page, however long the history. */
export function jobsQuery(f: JobFilter, offset: number, limit: number): string {
  const q = new URLSearchParams({ offset: String(offset), limit: String(limit), withTotalCount: 'true' });
  if (f.state) {
    q.set('state', f.state);
  }
  if (f.vc) {
    q.set('vc', f.vc);
  }
  const keyword = f.name.trim();
  if (keyword) {
    q.set('keyword', keyword);
  }
  return `jobs?${q.toString()}`;
}

/** "1–50 of 120" for the rows [offset, offset + shown) of `total`. */
export function pageLabel(offset: number, shown: number, total: number): string {
  return shown ? `${offset + 1}–${offset + shown} of ${total}` : `0 of ${total}`;
}

/** Running jobs and the GPUs they hold (the status bar). */
export function usage(jobs: JobSummary[]): { running: number; gpus: number; waiting: number } {
  let running = 0;
  let gpus = 0;
  let waiting = 0;
  for (const j of jobs) {
    if (j.state === 'RUNNING') {
      running += 1;
      gpus += j.totalGpuNumber || 0;
    } else if (j.state === 'WAITING') {
      waiting += 1;
    }
  }
  return { running, gpus, waiting };
}

export function usageText(u: { running: number; gpus: number; waiting: number }): string {
  const parts = [`PAI: ${u.running} running`, `${u.gpus} GPU${u.gpus === 1 ? '' : 's'}`];
  if (u.waiting) {
    parts.push(`${u.waiting} waiting`);
  }
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// submission

export interface JobForm {
  name: string;
  virtualCluster: string;
  sku: string; // '' = any
  instances: number;
  gpu: number;
  cpu: number;
  memoryMB: number;
  image: string;
  imageItem?: string; // a marketplace dockerimage item used instead of `image`
  command: string; // one command a line
  debugMinutes: number; // 0 = no debug reservation
  parameters: string; // KEY=value a line: the protocol's parameters, used as <% $parameters.KEY %>
  secrets: string; // KEY=value a line: the protocol's secrets (masked for everyone but the runtime)
}

export const TASK_ROLE = 'worker';

export function defaultForm(): JobForm {
  return {
    name: '',
    virtualCluster: 'default',
    sku: '',
    instances: 1,
    gpu: 0,
    cpu: 1,
    memoryMB: 1024,
    image: 'python:3.11',
    command: '',
    debugMinutes: 0,
    parameters: '',
    secrets: ''
  };
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `KEY=value` lines → a mapping, or the first bad line; blank lines and `# comments` are skipped. */
export function parseKeyValues(text: string): { values: Record<string, string>; error?: string } {
  const values: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      continue;
    }
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq).trim();
    if (eq < 0 || !KEY.test(key)) {
      return { values, error: `line ${i + 1}: KEY=value, with a key of letters, digits and "_"` };
    }
    values[key] = line.slice(eq + 1).trim();
  }
  return { values };
}

function keyValueLines(values: unknown): string {
  if (!values || typeof values !== 'object') {
    return '';
  }
  return Object.entries(values as Record<string, unknown>)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join('\n');
}

/** The job the form stands for, as the one job-document definition describes jobs (jobdoc.ts):
 * one task role, `worker`, with the form's resources and its commands (one a line). */
export function formToDescription(f: JobForm): JobDescription {
  const commands = f.command
    .split('\n')
    .map(c => c.trimEnd())
    .filter(c => c.trim() !== '');
  return {
    name: f.name,
    image: f.image,
    imageItem: f.imageItem || null,
    virtualCluster: f.virtualCluster,
    parameters: parseKeyValues(f.parameters ?? '').values,
    secrets: parseKeyValues(f.secrets ?? '').values,
    debugMinutes: f.debugMinutes > 0 ? f.debugMinutes : 0,
    roles: [
      { name: TASK_ROLE, instances: f.instances, cpu: f.cpu, memoryMB: f.memoryMB, gpu: f.gpu, sku: f.sku || null, commands }
    ]
  };
}

/** The job protocol v2 (as an object) the form stands for. */
export function formToProtocol(f: JobForm): Record<string, any> {
  return buildJobDocument(formToDescription(f));
}

export function formToYaml(f: JobForm): string {
  return jsyaml.dump(formToProtocol(f), { lineWidth: 120, noRefs: true });
}

/** Best effort: read a (possibly hand-edited) protocol back into the form. */
export function yamlToForm(text: string, base: JobForm): JobForm {
  const doc = jsyaml.load(text) as any;
  if (!doc || typeof doc !== 'object') {
    throw new Error('the job protocol must be a YAML mapping');
  }
  const f: JobForm = { ...base };
  if (typeof doc.name === 'string') {
    f.name = doc.name;
  }
  if (doc.defaults?.virtualCluster) {
    f.virtualCluster = String(doc.defaults.virtualCluster);
  }
  const roles = doc.taskRoles && typeof doc.taskRoles === 'object' ? Object.values(doc.taskRoles) : [];
  const role: any = roles[0];
  if (role) {
    f.instances = Number(role.instances ?? 1);
    const r = role.resourcePerInstance ?? {};
    f.gpu = Number(r.gpu ?? 0);
    f.cpu = Number(r.cpu ?? f.cpu);
    f.memoryMB = Number(r.memoryMB ?? f.memoryMB);
    if (Array.isArray(role.commands)) {
      f.command = role.commands.join('\n');
    }
  }
  const img = (doc.prerequisites ?? []).find((p: any) => p?.type === 'dockerimage');
  if (img?.marketplace) {
    f.imageItem = String(img.marketplace);
  } else if (img?.uri) {
    f.image = String(img.uri);
    f.imageItem = undefined;
  }
  const extraRoles = doc.extras?.hivedScheduler?.taskRoles;
  const sku = extraRoles ? (Object.values(extraRoles)[0] as any)?.skuType : undefined;
  f.sku = sku ? String(sku) : '';
  f.debugMinutes = Number(doc.extras?.debugReservation?.minutes ?? 0);
  f.parameters = keyValueLines(doc.parameters);
  f.secrets = keyValueLines(doc.secrets);
  return f;
}

/** A job as a marketplace template: the same protocol without the secrets' values (the marketplace
 * refuses them: every reader would see them); the `<% $secrets.KEY %>` references stay. */
export function templateText(text: string): { text: string; removedSecrets: string[] } {
  const doc = jsyaml.load(text) as any;
  if (!doc || typeof doc !== 'object') {
    throw new Error('the job protocol must be a YAML mapping');
  }
  const removedSecrets = doc.secrets && typeof doc.secrets === 'object' ? Object.keys(doc.secrets) : [];
  delete doc.secrets;
  return { text: jsyaml.dump(doc, { lineWidth: 120, noRefs: true }), removedSecrets };
}

/** Which form field a server error is about (PAI names the protocol field first:
 * ``taskRoles.worker.resourcePerInstance.gpu: must be ...``). */
export function errorField(message: string): keyof JobForm | 'yaml' {
  const path = message.split(':')[0].trim();
  const rules: [RegExp, keyof JobForm][] = [
    [/^name\b/, 'name'],
    [/^defaults\.virtualCluster/, 'virtualCluster'],
    [/^extras\.hivedScheduler/, 'sku'],
    [/^extras\.debugReservation/, 'debugMinutes'],
    [/\.instances$/, 'instances'],
    [/resourcePerInstance\.gpu$/, 'gpu'],
    [/resourcePerInstance\.cpu$/, 'cpu'],
    [/resourcePerInstance\.memoryMB$/, 'memoryMB'],
    [/resourcePerInstance/, 'gpu'],
    [/\.commands/, 'command'],
    [/^parameters/, 'parameters'],
    [/^secrets/, 'secrets'],
    [/^prerequisites/, 'image']
  ];
  for (const [re, field] of rules) {
    if (re.test(path)) {
      return field;
    }
  }
  if (/virtual cluster|not allowed to do operation/i.test(message)) {
    return 'virtualCluster';
  }
  if (/already has a job|already exists|ConflictJob/i.test(message)) {
    return 'name';
  }
  return 'yaml';
}

/** Client-side checks (the server checks everything again). */
export function checkForm(f: JobForm): Partial<Record<keyof JobForm, string>> {
  const errors: Partial<Record<keyof JobForm, string>> = {};
  if (!/^[A-Za-z0-9_.-]+$/.test(f.name)) {
    errors.name = 'letters, digits, "_", "." and "-" only';
  }
  if (!Number.isInteger(f.instances) || f.instances < 1) {
    errors.instances = 'at least 1';
  }
  if (!Number.isInteger(f.gpu) || f.gpu < 0) {
    errors.gpu = 'an integer ≥ 0';
  }
  if (!f.command.trim()) {
    errors.command = 'a command is required';
  }
  if (!f.imageItem && !f.image.trim()) {
    errors.image = 'an image is required';
  }
  for (const key of ['parameters', 'secrets'] as const) {
    const error = parseKeyValues(f[key] ?? '').error;
    if (error) {
      errors[key] = error;
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------
// files → commands

function b64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) {
    bin += String.fromCharCode(b);
  }
  return btoa(bin);
}

/** The Python code of a notebook (code cells; IPython magics and shell escapes commented out). */
export function notebookToPython(nb: any): string {
  const cells = (nb?.cells ?? []) as any[];
  return cells
    .filter(c => c.cell_type === 'code')
    .map(c => {
      const src = Array.isArray(c.source) ? c.source.join('') : String(c.source ?? '');
      return src
        .split('\n')
        .map((l: string) => (/^\s*[%!]/.test(l) ? `# ${l}` : l))
        .join('\n');
    })
    .join('\n\n');
}

export function jobNameFor(path: string, now: Date = new Date()): string {
  const base = path.split('/').pop() ?? 'job';
  const stem = base.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 40) || 'job';
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${stem}-${stamp}`;
}

/** Commands that run a file in a job: the file travels inside the protocol (base64), so the job
 * needs no shared storage. */
export function commandForFile(path: string, content: string): string {
  const base = (path.split('/').pop() ?? 'main').replace(/[^A-Za-z0-9_.-]+/g, '_');
  if (base.endsWith('.sh')) {
    return `echo ${b64(content)} | base64 -d > ${base}\nbash ${base}`;
  }
  const py = base.endsWith('.ipynb') ? base.replace(/\.ipynb$/, '.py') : base;
  return `echo ${b64(content)} | base64 -d > ${py}\npython3 ${py}`;
}

// ---------------------------------------------------------------------------------------------
// job detail

export interface TaskRow {
  role: string;
  index: number;
  state: string;
  subState: string | null;
  node: string;
  gpus: string;
  exitCode: number | null;
  logPath: string | null;
  debugUntil: number | null;
}

export function taskRows(detail: any): TaskRow[] {
  const rows: TaskRow[] = [];
  for (const [role, tr] of Object.entries<any>(detail?.taskRoles ?? {})) {
    for (const t of tr.taskStatuses ?? []) {
      rows.push({
        role,
        index: t.taskIndex,
        state: t.taskState,
        subState: t.subState ?? null,
        node: t.containerNodeName ?? '',
        gpus: t.containerGpus ?? '',
        exitCode: t.containerExitCode ?? null,
        logPath: t.containerLog ?? null,
        debugUntil: t.debugUntil ?? null
      });
    }
  }
  return rows;
}

/** `/api/v2/jobs/...` (as PAI names a log location) → the path under the server extension. */
export function proxiedPath(apiPath: string): string {
  return apiPath.replace(/^\/?(rest-server\/)?api\/v2\/?/, '');
}

export interface ExitInfo {
  category: string;
  phrase: string;
  reason: string;
  solution: string;
}

export function exitInfo(detail: any): ExitInfo | null {
  const st = detail?.jobStatus ?? {};
  const spec = st.appExitSpec;
  if (!spec) {
    return null;
  }
  const solution = Array.isArray(spec.solution) ? spec.solution.join('; ') : spec.solution ?? '';
  return {
    category: spec.type ?? st.appExitType ?? '',
    phrase: spec.phrase ?? '',
    reason: spec.reason ?? st.appExitDiagnostics ?? '',
    solution
  };
}

/** Parse a server-sent-events buffer into complete messages and the unparsed rest. */
export function parseSSE(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) {
        continue;
      }
      if (line.startsWith('event:')) {
        event = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
    if (data.length) {
      events.push({ event, data: data.join('\n') });
    }
  }
  return { events, rest };
}

// ---------------------------------------------------------------------------------------------
// marketplace

export interface MarketItem {
  id: string;
  name: string;
  author: string;
  type: string;
  summary?: string;
  description?: string;
  tags?: (string | { name: string })[];
  protocol?: string;
  version?: number;
  useNumber?: number;
  starNumber?: number;
}

export function tagNames(item: MarketItem): string[] {
  return (item.tags ?? []).map(t => (typeof t === 'string' ? t : t.name));
}

/** What "use in submission panel" does with an item: a template replaces the whole form, a
 * docker image item becomes the form's image (by reference), data/script items are added to the
 * YAML as a marketplace prerequisite. */
export function applyItem(form: JobForm, item: MarketItem): { form: JobForm; yaml?: string } {
  if (item.type === 'template' && item.protocol) {
    const f = yamlToForm(item.protocol, form);
    if (!f.name || f.name === item.name) {
      f.name = jobNameFor(item.name);
    }
    const doc = jsyaml.load(item.protocol) as any;
    doc.name = f.name;
    return { form: f, yaml: jsyaml.dump(doc, { lineWidth: 120, noRefs: true }) };
  }
  if (item.type === 'dockerimage') {
    return { form: { ...form, imageItem: item.name } };
  }
  const doc = formToProtocol(form);
  doc.prerequisites.push({ name: item.name.replace(/[^A-Za-z0-9_]/g, '_'), type: item.type, marketplace: item.name });
  return { form, yaml: jsyaml.dump(doc, { lineWidth: 120, noRefs: true }) };
}

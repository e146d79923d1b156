/**
 * The OpenPAI job document (protocol v2) the Lab writes, built from a small description: the same
 * definition as the Python client's `pai_client/jobdoc.py` (used by `%%pai submit`, the
 * experiments' trials and PaiSpawner's notebook job). Both are held to the golden cases in
 * `tests/data/job_documents.json`: a description there builds the same document here and there.
 * Pure: no DOM, no YAML.
 */

/** One task role: `instances` tasks (one gang) running `commands` with these resources. */
export interface RoleDescription {
  name: string;
  commands: string[];
  instances?: number; // 1
  cpu?: number; // 1
  memoryMB?: number; // 1024
  gpu?: number; // 0
  ports?: Record<string, number>;
  /** HiveD skuType of the role's tasks (-> extras.hivedScheduler.taskRoles) */
  sku?: string | null;
  /** names of the job's data/script prerequisites the role uses */
  prerequisites?: string[];
}

/** What a job is made of (the golden file's `description`). */
export interface JobDescription {
  name: string;
  roles: RoleDescription[];
  /** the image's URI (the prerequisite named `image`) ... */
  image?: string; // python:3.11
  /** ... or a marketplace dockerimage item (`name[@version]`) instead */
  imageItem?: string | null;
  virtualCluster?: string | null; // -> defaults.virtualCluster
  retries?: number | null; // -> jobRetryCount (left out when not given)
  parameters?: Record<string, unknown>;
  secrets?: Record<string, unknown>;
  /** more prerequisites, as written in a job */
  prerequisites?: Record<string, unknown>[];
  /** merged into extras */
  extras?: Record<string, unknown>;
  debugMinutes?: number; // -> extras.debugReservation.minutes
}

/** The name of the job's docker image prerequisite. */
export const IMAGE = 'image';

export const DEFAULT_IMAGE = 'python:3.11';

type Doc = Record<string, any>;

const copy = <T>(value: T): T => structuredClone(value);

const isEmpty = (value: Record<string, unknown> | undefined | null): boolean => !value || !Object.keys(value).length;

function roleDocument(role: RoleDescription): Doc {
  const resources: Doc = { cpu: role.cpu ?? 1, memoryMB: role.memoryMB ?? 1024, gpu: role.gpu ?? 0 };
  if (!isEmpty(role.ports)) {
    resources.ports = { ...role.ports };
  }
  const out: Doc = { instances: role.instances ?? 1, dockerImage: IMAGE, resourcePerInstance: resources, commands: [...role.commands] };
  if (role.prerequisites?.length) {
    out.prerequisites = [...role.prerequisites];
  }
  return out;
}

/** The protocol v2 document (keys in the order a person reads them, as the Python builder writes). */
export function buildJobDocument(job: JobDescription): Doc {
  const image: Doc = job.imageItem
    ? { name: IMAGE, type: 'dockerimage', marketplace: job.imageItem }
    : { name: IMAGE, type: 'dockerimage', uri: job.image ?? DEFAULT_IMAGE };
  const doc: Doc = { protocolVersion: 2, name: job.name, type: 'job' };
  if (job.retries !== undefined && job.retries !== null) {
    doc.jobRetryCount = job.retries;
  }
  if (!isEmpty(job.parameters)) {
    doc.parameters = copy(job.parameters);
  }
  doc.prerequisites = [image, ...copy(job.prerequisites ?? [])];
  doc.taskRoles = Object.fromEntries(job.roles.map(role => [role.name, roleDocument(role)]));
  if (job.virtualCluster) {
    doc.defaults = { virtualCluster: job.virtualCluster };
  }
  if (!isEmpty(job.secrets)) {
    doc.secrets = copy(job.secrets);
  }
  const extras: Doc = copy(job.extras ?? {});
  const skus = Object.fromEntries(job.roles.filter(role => role.sku).map(role => [role.name, { skuType: role.sku }]));
  if (!isEmpty(skus)) {
    extras.hivedScheduler = { ...(extras.hivedScheduler ?? {}), taskRoles: skus };
  }
  if (job.debugMinutes) {
    extras.debugReservation = { minutes: job.debugMinutes };
  }
  if (!isEmpty(extras)) {
    doc.extras = extras;
  }
  return doc;
}

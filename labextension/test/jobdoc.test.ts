/** The Lab writes the same job document as the Python client: every golden case of
 * tests/data/job_documents.json (written for pai_client/jobdoc.py) builds the same document here. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { buildJobDocument, JobDescription } from '../src/jobdoc';
import { defaultForm, formToDescription, formToProtocol } from '../src/model';

const GOLDEN = resolve(__dirname, '../../tests/data/job_documents.json');

interface GoldenCase {
  description: JobDescription;
  document: Record<string, unknown>;
}

describe('the golden job documents', () => {
  it('exist (they are shared with the Python client)', () => {
    expect(existsSync(GOLDEN), `${GOLDEN} is missing: the golden cases of pai_client/jobdoc.py`).toBe(true);
  });

  const cases: GoldenCase[] = existsSync(GOLDEN) ? JSON.parse(readFileSync(GOLDEN, 'utf-8')) : [];
  it.each(cases.map((c, i) => [`${i}: ${c.description.name}`, c] as const))('%s builds the same document', (_, c) => {
    expect(buildJobDocument(c.description)).toEqual(c.document); // as data: key order aside
  });
});

describe('the submission form as a job description', () => {
  it('is one worker role with the form resources, SKU and commands', () => {
    const form = {
      ...defaultForm(),
      name: 'train',
      virtualCluster: 'research',
      sku: 'V100',
      instances: 2,
      gpu: 1,
      command: 'echo a\n\n  python3 x.py  ',
      debugMinutes: 5,
      parameters: 'lr=0.1',
      secrets: 'key=s3cret'
    };
    expect(formToDescription(form)).toEqual({
      name: 'train',
      image: 'python:3.11',
      imageItem: null,
      virtualCluster: 'research',
      parameters: { lr: '0.1' },
      secrets: { key: 's3cret' },
      debugMinutes: 5,
      roles: [{ name: 'worker', instances: 2, cpu: 1, memoryMB: 1024, gpu: 1, sku: 'V100', commands: ['echo a', '  python3 x.py'] }]
    });
    expect(formToProtocol(form)).toEqual({
      protocolVersion: 2,
      name: 'train',
      type: 'job',
      parameters: { lr: '0.1' },
      prerequisites: [{ name: 'image', type: 'dockerimage', uri: 'python:3.11' }],
      taskRoles: {
        worker: {
          instances: 2,
          dockerImage: 'image',
          resourcePerInstance: { cpu: 1, memoryMB: 1024, gpu: 1 },
          commands: ['echo a', '  python3 x.py']
        }
      },
      defaults: { virtualCluster: 'research' },
      secrets: { key: 's3cret' },
      extras: { hivedScheduler: { taskRoles: { worker: { skuType: 'V100' } } }, debugReservation: { minutes: 5 } }
    });
  });
});

// Calls every method of OpenPAI's JavaScript SDK (@microsoft/openpai-js-sdk, unmodified) for users,
// groups, tokens, authn, cluster info, jobs, virtual clusters, storages and job history against a
// running PAI Hub, and checks each answer as the SDK's own API suite does: a success is validated
// against the SDK's copy of OpenAPI spec (its swagger.yaml, dereferenced, Ajv with `nullable`), a
// refusal by its status, error class and message. Prints one JSON report on stdout:
//   {results: [{name, ok, detail}], skipped: [{name, reason}]}
// Usage: node sdk_methods.js <node_modules dir> <rest server host:port> <admin token>
'use strict';

const path = require('path');

const [modules, server, adminToken] = process.argv.slice(2);
const load = name => require(path.join(modules, name));
const sdk = load('@microsoft/openpai-js-sdk');
const SwaggerParser = load('@apidevtools/swagger-parser');
const Ajv = load('ajv');
const { PAIV2 } = sdk;

const SWAGGER = path.join(modules, '@microsoft/openpai-js-sdk/lib/src/api/v2/swagger.yaml');
const results = [];
const skipped = [];
const ajv = new Ajv({ nullable: true, unknownFormats: 'ignore', logger: false });
let schemas = {};

function cluster(token, username) {
  return { rest_server_uri: server, https: false, token, username };
}

// The swagger refers to the job protocol's schema on GitHub; it is read from PROTOCOL_SCHEMA (the
// same file, kept in the reference directory) when set, else taken as "any object" (no network).
const offline = {
  order: 1,
  canRead: /^https?:/i,
  read: () => (process.env.PROTOCOL_SCHEMA ? require('fs').readFileSync(process.env.PROTOCOL_SCHEMA, 'utf8') : '{}'),
};

async function loadSchemas() {
  const api = await SwaggerParser.dereference(SWAGGER, { resolve: { http: offline } });
  const out = {};
  for (const item of Object.values(api.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters' || !op.operationId) continue;
      const code = Object.keys(op.responses).find(c => c.startsWith('20'));
      const content = code && op.responses[code].content;
      const media = content && Object.values(content).find(m => m.schema);
      out[op.operationId] = media ? media.schema : null;
    }
  }
  // The SDK's copy of the swagger is OpenPAI's 2.2.5, where a task's taskUid is an integer; OpenPAI
  // corrected it in 2.2.6 ("update type of taskUid"): its server sends the pod's uid, a string.
  for (const op of ['getJob']) {
    const roles = out[op] && out[op].properties.taskRoles;
    const statuses = roles && roles.additionalProperties && roles.additionalProperties.properties.taskStatuses;
    if (statuses && statuses.items.properties.taskUid) statuses.items.properties.taskUid = { type: 'string' };
  }
  return out;
}

function record(name, ok, detail) {
  results.push({ name, ok, detail: ok ? undefined : String(detail).slice(0, 800) });
}

// A call expected to succeed; `operation` names the swagger operation its answer must match.
async function ok(name, operation, call) {
  try {
    const res = await call();
    const schema = schemas[operation];
    if (schema && !ajv.validate(schema, res)) {
      record(name, false, `answer does not match ${operation}: ${ajv.errorsText(ajv.errors)}; got ${JSON.stringify(res).slice(0, 300)}`);
      return res;
    }
    record(name, true);
    return res;
  } catch (err) {
    record(name, false, `${err.status || ''} ${err.message} ${JSON.stringify(err.data || '')}`);
    return undefined;
  }
}

// A call expected to be refused with `status` (and, when given, the error class and message).
async function refused(name, status, call, errorClass, message) {
  try {
    const res = await call();
    record(name, false, `expected ${status}, got success ${JSON.stringify(res).slice(0, 200)}`);
  } catch (err) {
    const problems = [];
    if (err.status !== status) problems.push(`status ${err.status} (expected ${status})`);
    if (errorClass && err.constructor.name !== errorClass) problems.push(`error ${err.constructor.name} (expected ${errorClass})`);
    if (message && err.message !== message) problems.push(`message ${JSON.stringify(err.message)} (expected ${JSON.stringify(message)})`);
    record(name, problems.length === 0, problems.join('; ') + ` ${JSON.stringify(err.data || '')}`);
  }
}

const APP_REFUSED = 'Applications are not allowed to do this operation.';
const NON_ADMIN = 'Non-admin is not allow to do this operation.';
const delay = ms => new Promise(resolve => setTimeout(resolve, ms));

function sleepJob(name, seconds) {
  return {
    protocolVersion: 2, name, type: 'job',
    prerequisites: [{ name: 'image', type: 'dockerimage', uri: 'python:3.11' }],
    taskRoles: { worker: { instances: 1, dockerImage: 'image',
      resourcePerInstance: { cpu: 1, memoryMB: 256, gpu: 0 }, commands: [`sleep ${seconds}`] } },
  };
}

async function waitState(client, user, job, states) {
  for (let i = 0; i < 600; i++) {
    const detail = await client.job.getJob(user, job);
    if (states.includes(detail.jobStatus.state)) return detail;
    await delay(100);
  }
  throw new Error(`${user}~${job} never reached ${states}`);
}

async function main() {
  schemas = await loadSchemas();
  const admin = new PAIV2.OpenPAIClient(cluster(adminToken, 'admin'));
  const suffix = Date.now().toString(36);

  // -- cluster info, authn, tokens ------------------------------------------------------------
  await ok('api.getClusterInfo', 'getClusterInfo', () => admin.api.getClusterInfo());
  const appToken = await ok('token.createApplicationToken', 'createApplicationToken',
    () => admin.token.createApplicationToken());
  await ok('token.getTokens', 'getTokens', () => admin.token.getTokens());
  const app = new PAIV2.OpenPAIClient(cluster(appToken && appToken.token, 'admin'));
  await refused('token.getTokens (application token)', 403, () => app.token.getTokens(), 'ForbiddenUserError', APP_REFUSED);
  await refused('token.createApplicationToken (application token)', 403, () => app.token.createApplicationToken(),
    'ForbiddenUserError', APP_REFUSED);
  await refused('token.getTokens (revoked token)', 401, () => new PAIV2.OpenPAIClient(cluster('not-a-token')).token.getTokens(),
    'UnauthorizedUserError', 'Your token is invalid.');

  // -- users ------------------------------------------------------------------------------------
  const user = `sdk_user_${suffix}`;
  await ok('user.createUser', 'createUser', () => admin.user.createUser({ username: user, password: 'test_password' }));
  await refused('user.createUser (conflict)', 409, () => admin.user.createUser({ username: user, password: 'test_password' }),
    'ConflictUserError');
  await refused('user.createUser (application token)', 403,
    () => app.user.createUser({ username: `${user}_x`, password: 'test_password' }), 'ForbiddenUserError', APP_REFUSED);
  await ok('user.getAllUser', 'getAllUser', () => admin.user.getAllUser());
  await ok('user.getUser', 'getUser', () => admin.user.getUser(user));
  await ok('user.updateUser (patch)', 'updateUser', () => admin.user.updateUser({ username: user, email: 'new_email@test1.com' }));
  await ok('user.updateUser (full)', 'updateUser', () => admin.user.updateUser({ username: user, email: 'new_email@test2.com',
    virtualCluster: ['default'], admin: false, password: 'new_test_password', extension: {} }, false));
  await refused('user.updateUser (no such user)', 404,
    () => admin.user.updateUser({ username: 'non_exist_user', email: 'x@test.com' }));
  await refused('user.updateUser (application token)', 403,
    () => app.user.updateUser({ username: user, email: 'y@test.com' }), 'ForbiddenUserError', APP_REFUSED);

  const login = await ok('authn.basicLogin', 'basicLogin', () => admin.authn.basicLogin(user, 'new_test_password'));
  const me = new PAIV2.OpenPAIClient(cluster(login && login.token, user));
  await refused('authn.basicLogin (wrong password)', 400, () => admin.authn.basicLogin(user, 'incorrectpassword'));
  await refused('user.createUser (non-admin)', 403, () => me.user.createUser({ username: `${user}_y`, password: 'test_password' }),
    'ForbiddenUserError', NON_ADMIN);
  await refused('user.updateUser (non-admin)', 403, () => me.user.updateUser({ username: user, email: 'z@test.com' }),
    'ForbiddenUserError', NON_ADMIN);
  await refused('user.deleteUser (non-admin)', 403, () => me.user.deleteUser(user), 'ForbiddenUserError', NON_ADMIN);
  await ok('user.updateUserSelf (patch)', 'updateUserSelf', () => me.user.updateUserSelf({ username: user, email: 'me1@test.com' }));
  await ok('user.updateUserSelf (full)', 'updateUserSelf', () => me.user.updateUserSelf({ username: user, email: 'me2@test.com',
    oldPassword: 'new_test_password', newPassword: 'newest_password' }, false));
  await refused('user.updateUserSelf (another username)', 403,
    () => me.user.updateUserSelf({ username: 'incorrect_username', email: 'x@test.com' }));

  // -- groups -----------------------------------------------------------------------------------
  const group = `sdkgroup${suffix}`;
  await ok('group.createGroup', 'createGroup', () => admin.group.createGroup({ groupname: group }));
  await ok('group.getAllGroup', 'getAllGroup', () => admin.group.getAllGroup());
  await ok('group.getGroup', 'getGroup', () => admin.group.getGroup(group));
  await ok('group.updateGroup', 'updateGroup', () => admin.group.updateGroup({ data: { groupname: group,
    description: 'test update group' }, patch: true }));
  await ok('user.updateUserGroup', 'updateUserGroup', () => admin.user.updateUserGroup(user, group));
  await ok('group.getGroupMembers', 'getGroupMembers', () => admin.group.getGroupMembers(group));
  await ok('group.getGroupMembers (no such group)', 'getGroupMembers', () => admin.group.getGroupMembers(`nogroup${suffix}`));
  await refused('user.updateUserGroup (application token)', 403, () => app.user.updateUserGroup(user, group),
    'ForbiddenUserError', APP_REFUSED);
  await refused('user.updateUserGroup (no such user)', 404, () => admin.user.updateUserGroup('non_exist_user', group));
  await ok('user.deleteUserGroup', 'deleteUserGroup', () => admin.user.deleteUserGroup(user, group));
  await refused('user.deleteUserGroup (application token)', 403, () => app.user.deleteUserGroup(user, group),
    'ForbiddenUserError', APP_REFUSED);
  await ok('user.updateUserGrouplist', 'updateUserGrouplist', () => admin.user.updateUserGrouplist(user, ['default']));
  await refused('user.updateUserGrouplist (no such user)', 404, () => admin.user.updateUserGrouplist('non_exist_user', ['default']));
  await refused('user.updateUserGrouplist (application token)', 403, () => app.user.updateUserGrouplist(user, ['default']),
    'ForbiddenUserError', APP_REFUSED);
  await ok('group.deleteGroup', 'deleteGroup', () => admin.group.deleteGroup(group));

  // -- virtual clusters, storages -----------------------------------------------------------------
  await ok('virtualCluster.listVirtualClusters', 'listVirtualClusters', () => admin.virtualCluster.listVirtualClusters());
  await ok('virtualCluster.getVirtualCluster', 'getVirtualCluster', () => admin.virtualCluster.getVirtualCluster('default'));
  await ok('virtualCluster.getVirtualClusterSkuTypes', 'getVirtualClusterSkuTypes',
    () => admin.virtualCluster.getVirtualClusterSkuTypes('default'));
  const storages = await ok('storage.getStorages', 'getStorages', () => admin.storage.getStorages());
  const storageName = storages && storages.storages && storages.storages[0] && storages.storages[0].name;
  await ok('storage.getStorage', 'getStorage', () => admin.storage.getStorage(storageName || 'default'));

  // -- jobs ---------------------------------------------------------------------------------------
  const owner = new PAIV2.OpenPAIClient(cluster(adminToken, 'admin'));
  const tfJob = { ...load('@microsoft/openpai-js-sdk/lib/tests/common/test_data/testJobConfig').testJobConfig,
    name: `sdk_test_job${suffix}` };
  await ok('job.createJob (the SDK suite\'s tf-serving job)', 'createJob', () => owner.job.createJob(tfJob));
  const live = `sdk_sleep${suffix}`;
  await ok('job.createJob', 'createJob', () => owner.job.createJob(sleepJob(live, 600)));
  await ok('job.createRunningJob', 'createRunningJob', () => owner.job.createRunningJob(sleepJob(`sdk_running${suffix}`, 600)));
  await ok('job.listJobs', 'listJobs', () => owner.job.listJobs());
  await ok('job.listJobs (withTotalCount)', 'listJobs', () => owner.job.listJobs({ withTotalCount: true, limit: 2 }));
  await ok('job.getJob', 'getJob', () => owner.job.getJob('admin', live));
  await refused('job.getJob (no such job)', 404, () => owner.job.getJob('admin', 'sdk_test_nonexist_job'), 'NoJobError');
  await ok('job.getJob (attempt 0)', 'getJob', () => owner.job.getJob('admin', live, 0));
  await ok('job.getJobConfig', 'getJobConfig', () => owner.job.getJobConfig('admin', live));
  await refused('job.getJobConfig (no such job)', 404, () => owner.job.getJobConfig('admin', 'sdk_test_nonexist_job'));
  await ok('job.addTag', 'addTag', () => owner.job.addTag('admin', live, 'testTag'));
  const tagged = await owner.job.listJobs({ tagsContain: 'testTag' }).catch(() => []);
  record('job.listJobs (tagsContain)', Array.isArray(tagged) && tagged.some(j => j.name === live),
    `tagged job not listed: ${JSON.stringify(tagged).slice(0, 200)}`);
  await ok('job.deleteTag', 'deleteTag', () => owner.job.deleteTag('admin', live, 'testTag'));
  await waitState(owner, 'admin', live, ['RUNNING']);
  await ok('job.getTask', 'getTask', () => owner.job.getTask('admin', live, 0, 'worker', 0));
  await ok('job.getTaskLogs', 'getTaskLogs', () => owner.job.getTaskLogs('admin', live, 0, 'worker', 0, 0));
  await ok('job.getTaskLogs (tail mode)', 'getTaskLogs', () => owner.job.getTaskLogs('admin', live, 0, 'worker', 0, 0, true));
  await ok('job.listEvents', 'listEvents', () => owner.job.listEvents('admin', live));
  await ok('jobHistory.getJobAttemptsHealthz', 'getJobAttemptsHealthz', () => owner.jobHistory.getJobAttemptsHealthz('admin', live));
  await ok('jobHistory.getJobAttempts', 'getJobAttempts', () => owner.jobHistory.getJobAttempts('admin', live));
  await ok('jobHistory.getJobAttempt', 'getJobAttempt', () => owner.jobHistory.getJobAttempt('admin', live, 0));
  await ok('job.updateJobExecutionType (STOP)', 'updateJobExecutionType', () => owner.job.updateJobExecutionType('admin', live, 'STOP'));
  await ok('job.updateJobExecutionType (START)', 'updateJobExecutionType', () => owner.job.updateJobExecutionType('admin', live, 'START'));
  for (const name of [`sdk_running${suffix}`, tfJob.name]) {
    await owner.job.updateJobExecutionType('admin', name, 'STOP').catch(() => undefined);
  }
  await waitState(owner, 'admin', live, ['STOPPED']);
  await ok('jobHistory.getJobAttempts (stopped job)', 'getJobAttempts', () => owner.jobHistory.getJobAttempts('admin', live));
  await ok('job.getJob (stopped job)', 'getJob', () => owner.job.getJob('admin', live));

  // -- the end of the user's story ------------------------------------------------------------
  await ok('authn.basicLogout', 'basicLogout', () => me.authn.basicLogout());
  await refused('authn.basicLogout (revoked token)', 401, () => me.authn.basicLogout(), 'UnauthorizedUserError',
    'Your token is invalid.');
  await refused('user.deleteUser (application token)', 403, () => app.user.deleteUser(user), 'ForbiddenUserError', APP_REFUSED);
  await ok('user.deleteUser', 'deleteUser', () => admin.user.deleteUser(user));
  await refused('user.deleteUser (no such user)', 404, () => admin.user.deleteUser(user));
  await ok('token.deleteToken', 'deleteToken', () => admin.token.deleteToken(appToken.token));

  skipped.push({ name: 'authn.oidcLogin, authn.oidcLogout', reason: 'OIDC: PAI Hub logs in with passwords or the hub' });
  skipped.push({ name: 'kubernetes.getK8sNodes, kubernetes.getK8sPods',
    reason: 'Kubernetes-only: raw k8s lists; PAI Hub shows nodes at /api/v2/cluster/nodes' });
}

main()
  .catch(err => { results.push({ name: 'script', ok: false, detail: String(err && err.stack || err) }); })
  .finally(() => { process.stdout.write(JSON.stringify({ results, skipped }) + '\n'); });

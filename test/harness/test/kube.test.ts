import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type KubeControlPlane, startKubeControlPlane, waitFor } from '../src/index.ts';

let plane: KubeControlPlane;
before(async () => {
  plane = await startKubeControlPlane({ users: [{ name: 'someone' }] });
});
after(async () => {
  await plane?.stop();
});

test('the control plane serves the API to the admin over its own certificate', async () => {
  const version = await plane.kubectl(['version', '-o', 'json']);
  assert.equal(version.code, 0, version.stderr);
  const parsed = JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } };
  assert.equal(parsed.serverVersion.gitVersion, plane.assets.dir.match(/k8s-(v[\d.]+)/)?.[1]);
  const created = await plane.kubectl(['create', 'configmap', 'probe', '--from-literal=a=1']);
  assert.equal(created.code, 0, created.stderr);
  const got = await plane.kubectl(['get', 'configmap', 'probe', '-o', 'jsonpath={.data.a}']);
  assert.equal(got.stdout, '1');
});

test('RBAC is enforced for other users', async () => {
  const denied = await plane.kubectl(['get', 'configmaps'], { user: 'someone' });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /forbidden: User "someone" cannot list resource "configmaps"/);
  // A Role of our own: the built-in aggregated roles (view, edit) stay empty without a controller manager.
  const role = await plane.kubectl([
    'create',
    'role',
    'cm-reader',
    '--verb=get,list',
    '--resource=configmaps',
  ]);
  assert.equal(role.code, 0, role.stderr);
  const grant = await plane.kubectl([
    'create',
    'rolebinding',
    'someone-reads',
    '--role=cm-reader',
    '--user=someone',
  ]);
  assert.equal(grant.code, 0, grant.stderr);
  // The authorizer's cache takes the new binding a moment later.
  const allowed = await waitFor(
    async () => {
      const r = await plane.kubectl(['get', 'configmaps', '-o', 'name'], { user: 'someone' });
      return r.code === 0 ? r : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'the role binding takes effect' },
  );
  assert.match(allowed.stdout, /configmap\/probe/);
});

test('a stopped control plane starts again with its data', async () => {
  await plane.stop();
  const down = await plane.kubectl(['get', 'configmap', 'probe', '--request-timeout=2s']);
  assert.notEqual(down.code, 0);
  await plane.start();
  const got = await plane.kubectl(['get', 'configmap', 'probe', '-o', 'jsonpath={.data.a}']);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout, '1');
});

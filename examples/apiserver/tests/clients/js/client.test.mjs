// The official JavaScript client (npm @kubernetes/client-node 1.x) against the example API
// server, with node's built-in test runner.
//
// Written the way the client's README and examples use it: a KubeConfig with a cluster at the
// URL, makeApiClient(CoreV1Api), object-style parameters ({ namespace, body }), bodies without
// apiVersion/kind where its users leave them out, setHeaderOptions + PatchStrategy for patches,
// Watch, makeInformer, CustomObjectsApi, KubernetesObjectApi and loadAllYaml. Expectations are
// kube-apiserver's behaviour, not the example server's.
//
// Run: APISERVER_URL=http://127.0.0.1:PORT CLIENTS_NODE_MODULES=.../node_modules node --test client.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

// The client is installed outside the source tree (./scripts/test: target/clients/node).
const modules = process.env.CLIENTS_NODE_MODULES;
assert.ok(modules, 'CLIENTS_NODE_MODULES must point at a node_modules with @kubernetes/client-node');
const k8s = await import(
    pathToFileURL(createRequire(join(modules, 'noop.js')).resolve('@kubernetes/client-node')).href
);

const URL = process.env.APISERVER_URL;
assert.ok(URL, 'APISERVER_URL must be set');

const kc = new k8s.KubeConfig();
kc.loadFromOptions({
    clusters: [{ name: 'test', server: URL, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
});
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);

async function newNamespace(prefix) {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await core.createNamespace({ body: { metadata: { name } } });
    return name;
}

// The Status of a failed call (ApiException.body is the response text).
async function failure(promise) {
    try {
        await promise;
    } catch (e) {
        assert.ok(e instanceof k8s.ApiException, `expected an ApiException, got ${e}`);
        const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
        return { code: e.code, status: body };
    }
    assert.fail('the call succeeded');
}

async function eventually(check, what, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        try {
            last = await check();
            if (last) {
                return last;
            }
        } catch (e) {
            last = e;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`${what} not reached in ${timeoutMs} ms; last: ${last}`);
}

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const strategicPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);
const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);
const applyPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);

test('version', async () => {
    const info = await kc.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(info.major, '1');
    assert.ok(info.gitVersion.startsWith('v1.'), info.gitVersion);
});

test('create and get', async () => {
    const namespace = await newNamespace('js-create');
    const created = await core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: 'demo' }, data: { greeting: 'hello' } },
    });
    assert.equal(created.kind, 'ConfigMap');
    assert.equal(created.apiVersion, 'v1');
    assert.equal(created.metadata.namespace, namespace);
    assert.ok(created.metadata.uid);
    assert.ok(created.metadata.resourceVersion);
    assert.ok(created.metadata.creationTimestamp instanceof Date);
    const got = await core.readNamespacedConfigMap({ name: 'demo', namespace });
    assert.deepEqual(got.data, { greeting: 'hello' });
    const missing = await failure(core.readNamespacedConfigMap({ name: 'nope', namespace }));
    assert.equal(missing.code, 404);
    assert.equal(missing.status.reason, 'NotFound');
    assert.equal(missing.status.message, 'configmaps "nope" not found');
    const exists = await failure(core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'demo' } } }));
    assert.equal(exists.code, 409);
    assert.equal(exists.status.reason, 'AlreadyExists');
});

test('list with paging', async () => {
    const namespace = await newNamespace('js-page');
    const names = Array.from({ length: 7 }, (_, i) => `cm-${String(i).padStart(2, '0')}`);
    for (const name of names) {
        await core.createNamespacedConfigMap({ namespace, body: { metadata: { name } } });
    }
    const seen = [];
    let token;
    let pages = 0;
    do {
        const page = await core.listNamespacedConfigMap({ namespace, limit: 3, _continue: token });
        pages += 1;
        assert.ok(page.metadata.resourceVersion);
        assert.ok(page.items.length <= 3);
        seen.push(...page.items.map((i) => i.metadata.name));
        token = page.metadata._continue;
        if (token) {
            assert.equal(page.metadata.remainingItemCount, names.length - seen.length);
        }
    } while (token);
    assert.equal(pages, 3);
    assert.deepEqual(seen, names);
});

test('watch from a resourceVersion', async () => {
    const namespace = await newNamespace('js-watch');
    const rv = (await core.listNamespacedConfigMap({ namespace })).metadata.resourceVersion;
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'w' }, data: { v: '1' } } });
    await core.patchNamespacedConfigMap({ name: 'w', namespace, body: { data: { v: '2' } } }, mergePatch);
    await core.deleteNamespacedConfigMap({ name: 'w', namespace });
    const events = [];
    let request;
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`watch timed out; events: ${JSON.stringify(events)}`)), 10000);
        new k8s.Watch(kc)
            .watch(
                `/api/v1/namespaces/${namespace}/configmaps`,
                { resourceVersion: rv },
                (type, obj) => {
                    events.push([type, obj.metadata.name, (obj.data || {}).v]);
                    if (type === 'DELETED') {
                        clearTimeout(timer);
                        resolve();
                    }
                },
                (err) => {
                    if (err && err.name !== 'AbortError') {
                        clearTimeout(timer);
                        reject(err);
                    }
                },
            )
            .then((r) => {
                request = r;
            }, reject);
    });
    request?.abort();
    assert.deepEqual(events, [
        ['ADDED', 'w', '1'],
        ['MODIFIED', 'w', '2'],
        ['DELETED', 'w', '2'],
    ]);
});

test('update with a stale resourceVersion conflicts', async () => {
    const namespace = await newNamespace('js-conflict');
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'c' }, data: { v: '1' } } });
    const stale = await core.readNamespacedConfigMap({ name: 'c', namespace });
    const fresh = await core.readNamespacedConfigMap({ name: 'c', namespace });
    fresh.data.v = '2';
    await core.replaceNamespacedConfigMap({ name: 'c', namespace, body: fresh });
    stale.data.v = 'stale';
    const conflict = await failure(core.replaceNamespacedConfigMap({ name: 'c', namespace, body: stale }));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.status.reason, 'Conflict');
    assert.equal(
        conflict.status.message,
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; ' +
            'please apply your changes to the latest version and try again',
    );
    assert.equal((await core.readNamespacedConfigMap({ name: 'c', namespace })).data.v, '2');
});

test('patch types', async () => {
    const namespace = await newNamespace('js-patch');
    await apps.createNamespacedDeployment({
        namespace,
        body: {
            metadata: { name: 'web', labels: { app: 'web' } },
            spec: {
                replicas: 1,
                selector: { matchLabels: { app: 'web' } },
                template: {
                    metadata: { labels: { app: 'web' } },
                    spec: {
                        containers: [
                            { name: 'web', image: 'nginx:1.25', ports: [{ containerPort: 80 }] },
                            { name: 'sidecar', image: 'busybox:1' },
                        ],
                    },
                },
            },
        },
    });
    const patched = await apps.patchNamespacedDeployment(
        {
            name: 'web',
            namespace,
            body: { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:1.26' }] } } } },
        },
        strategicPatch,
    );
    const containers = Object.fromEntries(patched.spec.template.spec.containers.map((c) => [c.name, c]));
    assert.deepEqual(Object.keys(containers).sort(), ['sidecar', 'web']);
    assert.equal(containers.web.image, 'nginx:1.26');
    assert.equal(containers.web.ports[0].containerPort, 80);

    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'p' }, data: { a: '1', b: '2' } } });
    const merged = await core.patchNamespacedConfigMap(
        { name: 'p', namespace, body: { data: { b: null, c: '3' } } },
        mergePatch,
    );
    assert.deepEqual(merged.data, { a: '1', c: '3' });
    // Without a Content-Type option the client sends application/json-patch+json.
    const jsonPatched = await core.patchNamespacedConfigMap({
        name: 'p',
        namespace,
        body: [
            { op: 'test', path: '/data/a', value: '1' },
            { op: 'replace', path: '/data/a', value: '9' },
        ],
    });
    assert.deepEqual(jsonPatched.data, { a: '9', c: '3' });
    const failedTest = await failure(
        core.patchNamespacedConfigMap(
            { name: 'p', namespace, body: [{ op: 'test', path: '/data/a', value: '1' }] },
            jsonPatch,
        ),
    );
    assert.equal(failedTest.code, 422);
});

test('server-side apply', async () => {
    const namespace = await newNamespace('js-ssa');
    const apply = (data, fieldManager, force) =>
        core.patchNamespacedConfigMap(
            {
                name: 'ssa',
                namespace,
                body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa' }, data },
                fieldManager,
                force,
            },
            applyPatch,
        );
    assert.deepEqual((await apply({ a: '1', b: '2' }, 'mgr')).data, { a: '1', b: '2' });
    const second = await apply({ a: '1' }, 'mgr');
    assert.deepEqual(second.data, { a: '1' }, 'the field mgr stopped applying is removed');
    const entry = (second.metadata.managedFields ?? []).find((m) => m.manager === 'mgr');
    assert.ok(entry, JSON.stringify(second.metadata.managedFields));
    assert.equal(entry.operation, 'Apply');
    assert.deepEqual(entry.fieldsV1, { 'f:data': { 'f:a': {} } });

    const conflict = await failure(apply({ a: 'other' }, 'other'));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.status.reason, 'Conflict');
    assert.equal(conflict.status.message, 'Apply failed with 1 conflict: conflict with "mgr": .data.a');
    assert.equal(conflict.status.details.causes[0].reason, 'FieldManagerConflict');
    assert.equal(conflict.status.details.causes[0].field, '.data.a');

    const forced = await apply({ a: 'other' }, 'other', true);
    assert.deepEqual(forced.data, { a: 'other' });
    const managers = Object.fromEntries((forced.metadata.managedFields ?? []).map((m) => [m.manager, m.fieldsV1]));
    assert.deepEqual(managers.other, { 'f:data': { 'f:a': {} } });
    assert.ok(!('mgr' in managers), 'mgr lost its only field');

    // The generic client's apply (KubernetesObjectApi.patch with PatchStrategy.ServerSideApply).
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const generic = await objects.patch(
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'generic', namespace }, data: { x: 'y' } },
        undefined,
        undefined,
        'js-generic',
        false,
        k8s.PatchStrategy.ServerSideApply,
    );
    assert.deepEqual(generic.data, { x: 'y' });
    assert.ok((generic.metadata.managedFields ?? []).some((m) => m.manager === 'js-generic' && m.operation === 'Apply'), JSON.stringify(generic.metadata));
});

test('delete with preconditions', async () => {
    const namespace = await newNamespace('js-delete');
    const cm = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'd' } } });
    for (const [preconditions, text] of [
        [{ uid: '00000000-0000-0000-0000-000000000000' }, 'UID in precondition'],
        [{ resourceVersion: '1' }, 'ResourceVersion in precondition'],
    ]) {
        const failed = await failure(core.deleteNamespacedConfigMap({ name: 'd', namespace, body: { preconditions } }));
        assert.equal(failed.code, 409);
        assert.equal(failed.status.reason, 'Conflict');
        assert.ok(failed.status.message.includes(`Precondition failed: ${text}`), failed.status.message);
    }
    await core.deleteNamespacedConfigMap({
        name: 'd',
        namespace,
        body: { preconditions: { uid: cm.metadata.uid, resourceVersion: cm.metadata.resourceVersion } },
    });
    assert.equal((await failure(core.readNamespacedConfigMap({ name: 'd', namespace }))).code, 404);
});

test('an informer converges under concurrent writes', async () => {
    const namespace = await newNamespace('js-informer');
    const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${namespace}/configmaps`, () =>
        core.listNamespacedConfigMap({ namespace }),
    );
    const errors = [];
    informer.on('error', (err) => errors.push(err));
    await informer.start();
    try {
        const writer = async (w) => {
            for (let i = 0; i < 10; i++) {
                await core.createNamespacedConfigMap({
                    namespace,
                    body: { metadata: { name: `w${w}-${i}` }, data: { n: '0' } },
                });
            }
            for (let i = 0; i < 10; i++) {
                await core.patchNamespacedConfigMap(
                    { name: `w${w}-${i}`, namespace, body: { data: { n: '1' } } },
                    mergePatch,
                );
            }
            for (let i = 0; i < 10; i++) {
                if (i % 3 === 0) {
                    await core.deleteNamespacedConfigMap({ name: `w${w}-${i}`, namespace });
                } else {
                    await core.patchNamespacedConfigMap(
                        { name: `w${w}-${i}`, namespace, body: { data: { n: '2' } } },
                        mergePatch,
                    );
                }
            }
        };
        await Promise.all([0, 1, 2].map(writer));
        const final = await core.listNamespacedConfigMap({ namespace });
        const expected = Object.fromEntries(final.items.map((i) => [i.metadata.name, i.metadata.resourceVersion]));
        assert.equal(Object.keys(expected).length, 18);
        const store = () => Object.fromEntries(informer.list().map((o) => [o.metadata.name, o.metadata.resourceVersion]));
        const same = () => JSON.stringify(Object.entries(store()).sort()) === JSON.stringify(Object.entries(expected).sort());
        try {
            await eventually(same, 'informer store == LIST', 20000);
        } catch (e) {
            assert.fail(`informer store ${JSON.stringify(store())} != LIST ${JSON.stringify(expected)}; errors: ${errors}`);
        }
    } finally {
        await informer.stop();
    }
});

test('a CustomResourceDefinition lifecycle', async () => {
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const namespace = await newNamespace('js-crd');
    const name = 'crontabs.stable.example.com';
    const crd = {
        metadata: { name },
        spec: {
            group: 'stable.example.com',
            scope: 'Namespaced',
            names: { plural: 'crontabs', singular: 'crontab', kind: 'CronTab', shortNames: ['ct'] },
            versions: [
                {
                    name: 'v1',
                    served: true,
                    storage: true,
                    schema: {
                        openAPIV3Schema: {
                            type: 'object',
                            properties: {
                                spec: {
                                    type: 'object',
                                    properties: {
                                        cronSpec: { type: 'string' },
                                        image: { type: 'string' },
                                        replicas: { type: 'integer' },
                                    },
                                },
                            },
                        },
                    },
                },
            ],
        },
    };
    const createAndWaitEstablished = async () => {
        await ext.createCustomResourceDefinition({ body: crd });
        await eventually(async () => {
            const got = await ext.readCustomResourceDefinition({ name });
            return (got.status?.conditions || []).some((c) => c.type === 'Established' && c.status === 'True');
        }, 'CRD Established', 10000);
    };
    const gone = async () => {
        try {
            await ext.readCustomResourceDefinition({ name });
            return false;
        } catch (e) {
            return e.code === 404;
        }
    };
    const where = { group: 'stable.example.com', version: 'v1', namespace, plural: 'crontabs' };

    await createAndWaitEstablished();
    const body = {
        apiVersion: 'stable.example.com/v1',
        kind: 'CronTab',
        metadata: { name: 'nightly' },
        spec: { cronSpec: '* * * * */5', image: 'my-cron-image', replicas: 1 },
    };
    const created = await custom.createNamespacedCustomObject({ ...where, body });
    assert.equal(created.kind, 'CronTab');
    assert.ok(created.metadata.uid);
    const listed = await custom.listNamespacedCustomObject(where);
    assert.deepEqual(listed.items.map((i) => i.metadata.name), ['nightly']);
    const got = await custom.getNamespacedCustomObject({ ...where, name: 'nightly' });
    assert.equal(got.spec.replicas, 1);

    const invalid = await failure(
        custom.createNamespacedCustomObject({
            ...where,
            body: { ...body, metadata: { name: 'bad' }, spec: { cronSpec: 'x', replicas: 'three' } },
        }),
    );
    assert.equal(invalid.code, 422);
    assert.equal(invalid.status.reason, 'Invalid');
    assert.ok(
        invalid.status.message.includes(
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        ),
        invalid.status.message,
    );

    await ext.deleteCustomResourceDefinition({ name });
    await eventually(gone, 'CRD deleted', 20000);
    assert.equal((await failure(custom.listNamespacedCustomObject(where))).code, 404);
    // Recreated, the CRD starts empty: its objects went with it.
    await createAndWaitEstablished();
    assert.deepEqual((await custom.listNamespacedCustomObject(where)).items, []);
    await ext.deleteCustomResourceDefinition({ name });
    await eventually(gone, 'CRD deleted again', 20000);
});

test('YAML manifests through KubernetesObjectApi', async () => {
    // client-node encodes and decodes JSON only (ObjectSerializer has no YAML media type); its
    // YAML support is loadAllYaml/dumpYaml plus the generic client, as in its apply example.
    const namespace = await newNamespace('js-yaml');
    const manifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: from-yaml
  namespace: ${namespace}
data:
  a: b
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  namespace: ${namespace}
spec:
  replicas: 1
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
`;
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const specs = k8s.loadAllYaml(manifest);
    for (const spec of specs) {
        // The apply example: read, then patch if it exists, else create.
        spec.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(spec) };
        try {
            await objects.read({ apiVersion: spec.apiVersion, kind: spec.kind, metadata: spec.metadata });
            await objects.patch(spec);
        } catch (e) {
            assert.equal(e.code, 404, `read failed: ${e}`);
            await objects.create(spec);
        }
    }
    const cm = await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-yaml', namespace } });
    assert.deepEqual(cm.data, { a: 'b' });
    const deployment = await apps.readNamespacedDeployment({ name: 'nginx', namespace });
    assert.equal(deployment.spec.replicas, 1);
    const listed = await objects.list('v1', 'ConfigMap', namespace);
    assert.ok(listed.items.some((i) => i.metadata.name === 'from-yaml'));
    assert.ok(k8s.dumpYaml(cm).includes('a: b'));
});

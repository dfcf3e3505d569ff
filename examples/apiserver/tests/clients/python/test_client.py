"""The official Python Kubernetes client (PyPI `kubernetes`) against the example API server.

Written the way the client's own README and examples use it: a kubeconfig loaded with
`config.load_kube_config`, typed models without apiVersion/kind, `watch.Watch().stream`,
`SharedInformer`, `CustomObjectsApi`, `DynamicClient` and `utils.create_from_yaml`.
Expectations are kube-apiserver's behaviour, not the example server's.

Run: APISERVER_URL=http://127.0.0.1:PORT python -m unittest -v test_client
"""

import json
import os
import tempfile
import threading
import time
import unittest
import uuid

import yaml
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.informer import SharedInformer

URL = os.environ["APISERVER_URL"]
_KUBECONFIG_DIR = tempfile.TemporaryDirectory()


def setUpModule():
    # A kubeconfig for the test server, loaded like every user does.
    path = os.path.join(_KUBECONFIG_DIR.name, "config")
    with open(path, "w") as f:
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": URL}}],
                "users": [{"name": "test", "user": {}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            },
            f,
        )
    config.load_kube_config(config_file=path)


def new_namespace(prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def status_of(exc):
    """The Status body of an ApiException."""
    return json.loads(exc.body)


def eventually(check, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ApiException as e:  # noqa: PERF203
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last}")


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.core = client.CoreV1Api()

    def test_version(self):
        # VersionApi().get_code() requests /version/ (trailing slash).
        info = client.VersionApi().get_code()
        self.assertEqual(info.major, "1")
        self.assertTrue(info.minor)
        self.assertTrue(info.git_version.startswith("v1."), info.git_version)

    def test_configuration_host(self):
        # The other documented way: a Configuration with just the host.
        configuration = client.Configuration(host=URL)
        with client.ApiClient(configuration) as api_client:
            namespaces = client.CoreV1Api(api_client).list_namespace()
        self.assertIn("default", [n.metadata.name for n in namespaces.items])

    def test_create_get(self):
        ns = new_namespace("py-create")
        created = self.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="demo"), data={"greeting": "hello"})
        )
        self.assertEqual(created.kind, "ConfigMap")
        self.assertEqual(created.api_version, "v1")
        self.assertEqual(created.metadata.namespace, ns)
        self.assertTrue(created.metadata.uid)
        self.assertTrue(created.metadata.resource_version)
        self.assertIsNotNone(created.metadata.creation_timestamp)
        got = self.core.read_namespaced_config_map("demo", ns)
        self.assertEqual(got.data, {"greeting": "hello"})
        self.assertEqual(got.metadata.uid, created.metadata.uid)
        with self.assertRaises(ApiException) as missing:
            self.core.read_namespaced_config_map("nope", ns)
        self.assertEqual(missing.exception.status, 404)
        self.assertEqual(status_of(missing.exception)["reason"], "NotFound")
        self.assertEqual(status_of(missing.exception)["message"], 'configmaps "nope" not found')
        with self.assertRaises(ApiException) as exists:
            self.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="demo")))
        self.assertEqual(exists.exception.status, 409)
        self.assertEqual(status_of(exists.exception)["reason"], "AlreadyExists")

    def test_list_with_paging(self):
        ns = new_namespace("py-page")
        names = [f"cm-{i:02d}" for i in range(7)]
        for name in names:
            self.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
        seen, pages, token = [], 0, None
        while True:
            page = self.core.list_namespaced_config_map(ns, limit=3, _continue=token)
            pages += 1
            self.assertTrue(page.metadata.resource_version)
            self.assertLessEqual(len(page.items), 3)
            seen.extend(i.metadata.name for i in page.items)
            token = page.metadata._continue
            if not token:
                break
            self.assertEqual(page.metadata.remaining_item_count, len(names) - len(seen))
        self.assertEqual(pages, 3)
        self.assertEqual(seen, names)

    def test_watch_from_resource_version(self):
        ns = new_namespace("py-watch")
        listed = self.core.list_namespaced_config_map(ns)
        rv = listed.metadata.resource_version
        self.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w"), data={"v": "1"})
        )
        self.core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
        self.core.delete_namespaced_config_map("w", ns)
        events = []
        w = watch.Watch()
        for event in w.stream(self.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10):
            events.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("v")))
            self.assertIsInstance(event["object"], client.V1ConfigMap)
            if event["type"] == "DELETED":
                w.stop()
        self.assertEqual(events, [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")])

    def test_update_with_stale_resource_version_conflicts(self):
        ns = new_namespace("py-conflict")
        self.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"v": "1"})
        )
        stale = self.core.read_namespaced_config_map("c", ns)
        fresh = self.core.read_namespaced_config_map("c", ns)
        fresh.data["v"] = "2"
        updated = self.core.replace_namespaced_config_map("c", ns, fresh)
        self.assertNotEqual(updated.metadata.resource_version, stale.metadata.resource_version)
        stale.data["v"] = "stale"
        with self.assertRaises(ApiException) as conflict:
            self.core.replace_namespaced_config_map("c", ns, stale)
        self.assertEqual(conflict.exception.status, 409)
        body = status_of(conflict.exception)
        self.assertEqual(body["reason"], "Conflict")
        self.assertEqual(
            body["message"],
            'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
            "please apply your changes to the latest version and try again",
        )
        self.assertEqual(self.core.read_namespaced_config_map("c", ns).data["v"], "2")

    def test_patch_types(self):
        ns = new_namespace("py-patch")
        apps = client.AppsV1Api()
        deployment = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels={"app": "web"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "web"}),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(
                                name="web", image="nginx:1.25", ports=[client.V1ContainerPort(container_port=80)]
                            ),
                            client.V1Container(name="sidecar", image="busybox:1"),
                        ]
                    ),
                ),
            ),
        )
        apps.create_namespaced_deployment(ns, deployment)
        # A dict body is a strategic merge patch: containers merge by name.
        patched = apps.patch_namespaced_deployment(
            "web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}
        )
        containers = {c.name: c for c in patched.spec.template.spec.containers}
        self.assertEqual(set(containers), {"web", "sidecar"})
        self.assertEqual(containers["web"].image, "nginx:1.26")
        self.assertEqual(containers["web"].ports[0].container_port, 80)

        self.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="p"), data={"a": "1", "b": "2"})
        )
        # JSON merge patch: null removes a key.
        merged = self.core.patch_namespaced_config_map(
            "p", ns, {"data": {"b": None, "c": "3"}}, _content_type="application/merge-patch+json"
        )
        self.assertEqual(merged.data, {"a": "1", "c": "3"})
        # A list body is a JSON patch.
        json_patched = self.core.patch_namespaced_config_map(
            "p",
            ns,
            [{"op": "test", "path": "/data/a", "value": "1"}, {"op": "replace", "path": "/data/a", "value": "9"}],
        )
        self.assertEqual(json_patched.data, {"a": "9", "c": "3"})
        with self.assertRaises(ApiException) as failed_test:
            self.core.patch_namespaced_config_map("p", ns, [{"op": "test", "path": "/data/a", "value": "1"}])
        self.assertEqual(failed_test.exception.status, 422)

    def test_server_side_apply(self):
        ns = new_namespace("py-ssa")

        def apply(data, manager, **kwargs):
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data}
            return self.core.patch_namespaced_config_map(
                "ssa", ns, body, field_manager=manager, _content_type="application/apply-patch+yaml", **kwargs
            )

        first = apply({"a": "1", "b": "2"}, "mgr")
        self.assertEqual(first.data, {"a": "1", "b": "2"})
        second = apply({"a": "1"}, "mgr")
        self.assertEqual(second.data, {"a": "1"}, "the field mgr stopped applying is removed")
        entries = {m.manager: m for m in second.metadata.managed_fields or []}
        self.assertIn("mgr", entries)
        self.assertEqual(entries["mgr"].operation, "Apply")
        self.assertEqual(entries["mgr"].fields_type, "FieldsV1")
        self.assertEqual(entries["mgr"].fields_v1, {"f:data": {"f:a": {}}})

        with self.assertRaises(ApiException) as conflict:
            apply({"a": "other"}, "other")
        self.assertEqual(conflict.exception.status, 409)
        body = status_of(conflict.exception)
        self.assertEqual(body["reason"], "Conflict")
        self.assertEqual(body["message"], 'Apply failed with 1 conflict: conflict with "mgr": .data.a')
        self.assertEqual(body["details"]["causes"][0]["reason"], "FieldManagerConflict")
        self.assertEqual(body["details"]["causes"][0]["field"], ".data.a")

        forced = apply({"a": "other"}, "other", force=True)
        self.assertEqual(forced.data, {"a": "other"})
        entries = {m.manager: m.fields_v1 for m in forced.metadata.managed_fields or []}
        self.assertEqual(entries.get("other"), {"f:data": {"f:a": {}}})
        self.assertNotIn("mgr", entries, "mgr lost its only field")

    def test_delete_with_preconditions(self):
        ns = new_namespace("py-delete")
        cm = self.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="d")))
        for preconditions, text in [
            (client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000"), "UID in precondition"),
            (client.V1Preconditions(resource_version="1"), "ResourceVersion in precondition"),
        ]:
            with self.assertRaises(ApiException) as failed:
                self.core.delete_namespaced_config_map(
                    "d", ns, body=client.V1DeleteOptions(preconditions=preconditions)
                )
            self.assertEqual(failed.exception.status, 409)
            body = status_of(failed.exception)
            self.assertEqual(body["reason"], "Conflict")
            self.assertIn("Precondition failed: " + text, body["message"])
        self.core.delete_namespaced_config_map(
            "d",
            ns,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(
                    uid=cm.metadata.uid, resource_version=cm.metadata.resource_version
                )
            ),
        )
        with self.assertRaises(ApiException) as gone:
            self.core.read_namespaced_config_map("d", ns)
        self.assertEqual(gone.exception.status, 404)

    def test_informer_converges_under_concurrent_writes(self):
        ns = new_namespace("py-informer")
        informer = SharedInformer(self.core.list_namespaced_config_map, namespace=ns)
        errors = []
        informer.add_event_handler("ERROR", errors.append)
        informer.start()
        try:
            writer_errors = []

            def writer(w):
                try:
                    api = client.CoreV1Api()
                    for i in range(10):
                        api.create_namespaced_config_map(
                            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"w{w}-{i}"), data={"n": "0"})
                        )
                    for i in range(10):
                        api.patch_namespaced_config_map(f"w{w}-{i}", ns, {"data": {"n": "1"}})
                    for i in range(10):
                        if i % 3 == 0:
                            api.delete_namespaced_config_map(f"w{w}-{i}", ns)
                        else:
                            api.patch_namespaced_config_map(f"w{w}-{i}", ns, {"data": {"n": "2"}})
                except Exception as e:  # noqa: BLE001
                    writer_errors.append(e)

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(writer_errors, [])
            final = self.core.list_namespaced_config_map(ns)
            expected = {i.metadata.name: i.metadata.resource_version for i in final.items}
            self.assertEqual(len(expected), 3 * 6)

            def cache_state():
                return {o.metadata.name: o.metadata.resource_version for o in informer.cache.list()}

            try:
                eventually(lambda: cache_state() == expected, timeout=20, what="informer store == LIST")
            except AssertionError:
                self.fail(f"informer store {cache_state()} != LIST {expected}; informer errors: {errors}")
        finally:
            informer.stop()

    def test_custom_resource_definition_lifecycle(self):
        ext = client.ApiextensionsV1Api()
        custom = client.CustomObjectsApi()
        ns = new_namespace("py-crd")
        crd = client.V1CustomResourceDefinition(
            metadata=client.V1ObjectMeta(name="crontabs.stable.example.com"),
            spec=client.V1CustomResourceDefinitionSpec(
                group="stable.example.com",
                scope="Namespaced",
                names=client.V1CustomResourceDefinitionNames(
                    plural="crontabs", singular="crontab", kind="CronTab", short_names=["ct"]
                ),
                versions=[
                    client.V1CustomResourceDefinitionVersion(
                        name="v1",
                        served=True,
                        storage=True,
                        schema=client.V1CustomResourceValidation(
                            open_apiv3_schema=client.V1JSONSchemaProps(
                                type="object",
                                properties={
                                    "spec": client.V1JSONSchemaProps(
                                        type="object",
                                        properties={
                                            "cronSpec": client.V1JSONSchemaProps(type="string"),
                                            "image": client.V1JSONSchemaProps(type="string"),
                                            "replicas": client.V1JSONSchemaProps(type="integer"),
                                        },
                                    )
                                },
                            )
                        ),
                    )
                ],
            ),
        )

        def create_and_wait_established():
            ext.create_custom_resource_definition(crd)

            def established():
                got = ext.read_custom_resource_definition("crontabs.stable.example.com")
                conditions = {c.type: c.status for c in (got.status.conditions or [])} if got.status else {}
                return conditions.get("Established") == "True"

            eventually(established, timeout=10, what="CRD Established")

        create_and_wait_established()
        group, version, plural = "stable.example.com", "v1", "crontabs"
        body = {
            "apiVersion": "stable.example.com/v1",
            "kind": "CronTab",
            "metadata": {"name": "nightly"},
            "spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", "replicas": 1},
        }
        created = custom.create_namespaced_custom_object(group, version, ns, plural, body)
        self.assertEqual(created["kind"], "CronTab")
        self.assertTrue(created["metadata"]["uid"])
        listed = custom.list_namespaced_custom_object(group, version, ns, plural)
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["nightly"])
        got = custom.get_namespaced_custom_object(group, version, ns, plural, "nightly")
        self.assertEqual(got["spec"]["replicas"], 1)
        # The dynamic client finds the new kind through discovery.
        crontabs = DynamicClient(client.ApiClient()).resources.get(api_version="stable.example.com/v1", kind="CronTab")
        self.assertEqual([i.metadata.name for i in crontabs.get(namespace=ns).items], ["nightly"])

        bad = dict(body, metadata={"name": "bad"}, spec={"cronSpec": "x", "replicas": "three"})
        with self.assertRaises(ApiException) as invalid:
            custom.create_namespaced_custom_object(group, version, ns, plural, bad)
        self.assertEqual(invalid.exception.status, 422)
        status = status_of(invalid.exception)
        self.assertEqual(status["reason"], "Invalid")
        self.assertIn(
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            status["message"],
        )

        ext.delete_custom_resource_definition("crontabs.stable.example.com")

        def crd_gone():
            try:
                ext.read_custom_resource_definition("crontabs.stable.example.com")
                return False
            except ApiException as e:
                return e.status == 404

        eventually(crd_gone, timeout=20, what="CRD deleted")
        with self.assertRaises(ApiException) as no_resource:
            custom.list_namespaced_custom_object(group, version, ns, plural)
        self.assertEqual(no_resource.exception.status, 404)
        # Recreated, the CRD starts empty: its objects went with it.
        create_and_wait_established()
        self.assertEqual(custom.list_namespaced_custom_object(group, version, ns, plural)["items"], [])
        ext.delete_custom_resource_definition("crontabs.stable.example.com")
        eventually(crd_gone, timeout=20, what="CRD deleted again")

    def test_yaml(self):
        ns = new_namespace("py-yaml")
        # A structured body sent as application/yaml (the client serialises it as JSON, which is YAML).
        created = self.core.create_namespaced_config_map(
            ns,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="y"), data={"k": "v"}),
            _content_type="application/yaml",
        )
        self.assertEqual(created.data, {"k": "v"})
        # A YAML response: read raw and parsed by the caller.
        raw = self.core.read_namespaced_config_map(
            "y", ns, _headers={"Accept": "application/yaml"}, _preload_content=False
        )
        self.assertTrue(raw.headers["Content-Type"].startswith("application/yaml"), raw.headers)
        doc = yaml.safe_load(raw.data)
        self.assertEqual(doc["kind"], "ConfigMap")
        self.assertEqual(doc["data"], {"k": "v"})
        # utils.create_from_yaml: the README's way to create from a manifest file.
        manifest = os.path.join(_KUBECONFIG_DIR.name, "manifest.yaml")
        with open(manifest, "w") as f:
            f.write(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\ndata:\n  a: b\n---\n"
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nginx\nspec:\n  replicas: 1\n"
                "  selector:\n    matchLabels: {app: nginx}\n  template:\n    metadata:\n      labels: {app: nginx}\n"
                "    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n"
            )
        utils.create_from_yaml(client.ApiClient(), manifest, namespace=ns)
        self.assertEqual(self.core.read_namespaced_config_map("from-file", ns).data, {"a": "b"})
        self.assertEqual(client.AppsV1Api().read_namespaced_deployment("nginx", ns).spec.replicas, 1)
        # ... and with apply=True (server-side apply through the dynamic client, manager "python-client").
        utils.create_from_yaml(client.ApiClient(), manifest, namespace=ns, apply=True)
        applied = self.core.read_namespaced_config_map("from-file", ns)
        managers = [m.manager for m in applied.metadata.managed_fields or []]
        self.assertIn("python-client", managers, applied.metadata)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""A FAKE Kubernetes API server, for testing the Kubernetes backend's control loop only.

It is not Kubernetes: a tornado app on 127.0.0.1 that keeps objects in dicts and implements just the
endpoints the backend calls through the official client - list nodes; create/get/list/watch/delete
pods; pods/binding; pods/log; create configmaps, services, persistentvolumeclaims, networkpolicies; patch
configmaps.
No validation, no admission, no scheduling, no kubelet: a bound pod is marked Running at once, and a
test ends its container with :meth:`FakeApiServer.finish` (exit code, termination message, log).
Deleting a pod removes it at once (no graceful termination). exec (websockets) is not implemented.
The manifests themselves are checked against the real schemas in test_manifests.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

from tornado import httpserver, netutil, web


class Store:
    def __init__(self) -> None:
        self.version = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"pods": {}, "configmaps": {}, "services": {},
                                                              "persistentvolumeclaims": {},
                                                              "networkpolicies": {}}
        self.nodes: list[dict[str, Any]] = []
        self.logs: dict[str, bytes] = {}
        self.watchers: list[asyncio.Queue] = []
        self.calls: list[tuple[str, str]] = []

    def bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def emit(self, kind: str, pod: dict[str, Any]) -> None:
        for q in self.watchers:
            q.put_nowait({"type": kind, "object": json.loads(json.dumps(pod))})


def _match(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Base(web.RequestHandler):
    @property
    def store(self) -> Store:
        return self.application.settings["store"]

    def prepare(self) -> None:
        self.store.calls.append((self.request.method, self.request.path))

    def send(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))

    def fail(self, status: int, reason: str) -> None:
        self.send({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                   "code": status, "message": reason}, status)

    def body(self) -> dict[str, Any]:
        return json.loads(self.request.body)


class Nodes(Base):
    def get(self) -> None:
        selector = self.get_argument("labelSelector", None)
        self.send({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.store.version)},
                   "items": [n for n in self.store.nodes if _match(n, selector)]})


class Collection(Base):
    async def get(self, ns: str, resource: str) -> None:
        selector = self.get_argument("labelSelector", None)
        items = [o for o in self.store.objects[resource].values() if _match(o, selector)]
        if self.get_argument("watch", "") not in ("true", "1"):
            self.send({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.store.version)},
                       "items": items})
            return
        since = int(self.get_argument("resourceVersion", "0") or 0)
        timeout = float(self.get_argument("timeoutSeconds", "30"))
        q: asyncio.Queue = asyncio.Queue()
        self.store.watchers.append(q)
        self.set_header("Content-Type", "application/json")
        try:
            for o in items:  # anything newer than the requested version is replayed first
                if int(o["metadata"]["resourceVersion"]) > since:
                    q.put_nowait({"type": "MODIFIED", "object": o})
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    event = await asyncio.wait_for(q.get(), left)
                except asyncio.TimeoutError:
                    break
                if not _match(event["object"], selector):
                    continue
                self.write(json.dumps(event) + "\n")
                await self.flush()
        except Exception:
            pass
        finally:
            self.store.watchers.remove(q)
        self.finish()

    def post(self, ns: str, resource: str) -> None:
        obj = self.body()
        name = obj["metadata"]["name"]
        objs = self.store.objects[resource]
        if name in objs:
            self.fail(409, "AlreadyExists")
            return
        obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp="2024-01-01T00:00:00Z")
        if resource == "pods":
            obj["status"] = {"phase": "Pending"}
        self.store.bump(obj)
        objs[name] = obj
        if resource == "pods":
            self.store.emit("ADDED", obj)
        self.send(obj, 201)


class Item(Base):
    def get(self, ns: str, resource: str, name: str) -> None:
        obj = self.store.objects[resource].get(name)
        if obj is None:
            self.fail(404, "NotFound")
        else:
            self.send(obj)

    def delete(self, ns: str, resource: str, name: str) -> None:
        obj = self.store.objects[resource].pop(name, None)
        if obj is None:
            self.fail(404, "NotFound")
            return
        self.store.bump(obj)
        if resource == "pods":
            self.store.emit("DELETED", obj)
        self.send(obj)

    def patch(self, ns: str, resource: str, name: str) -> None:
        obj = self.store.objects[resource].get(name)
        if obj is None:
            self.fail(404, "NotFound")
            return
        patch = self.body()
        obj["metadata"].update(patch.get("metadata") or {})
        self.store.bump(obj)
        self.send(obj)


class Binding(Base):
    def post(self, ns: str, name: str) -> None:
        pod = self.store.objects["pods"].get(name)
        if pod is None:
            self.fail(404, "NotFound")
            return
        if pod["spec"].get("nodeName"):
            self.fail(409, "Conflict")
            return
        node = self.body()["target"]["name"]
        pod["spec"]["nodeName"] = node
        # no kubelet: the container "starts" at once
        pod["status"] = {"phase": "Running", "startTime": "2024-01-01T00:00:00Z", "containerStatuses": [
            {"name": "task", "ready": True, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}
        self.store.bump(pod)
        self.store.emit("MODIFIED", pod)
        self.send({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, 201)


class Log(Base):
    def get(self, ns: str, name: str) -> None:
        if name not in self.store.objects["pods"]:
            self.fail(404, "NotFound")
            return
        data = self.store.logs.get(name, b"")
        limit = self.get_argument("limitBytes", None)
        if limit is not None:
            data = data[: int(limit)]
        self.set_header("Content-Type", "text/plain")
        self.finish(data)


class FakeApiServer:
    """Runs the fake in a thread with its own event loop; ``url`` is where the client points."""

    def __init__(self) -> None:
        self.store = Store()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application([
            (r"/api/v1/nodes", Nodes),
            (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/binding", Binding),
            (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", Log),
            (r"/api/v1/namespaces/([^/]+)/(pods|configmaps|services|persistentvolumeclaims)", Collection),
            (r"/api/v1/namespaces/([^/]+)/(pods|configmaps|services|persistentvolumeclaims)/([^/]+)", Item),
            (r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/(networkpolicies)", Collection),
            (r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/(networkpolicies)/([^/]+)", Item),
        ], store=self.store)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> FakeApiServer:
        self.thread.start()
        self._ready.wait(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def call(self, fn: Any, *args: Any) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(5)

    def add_node(self, node: dict[str, Any]) -> None:
        self.store.nodes.append(node)

    def finish(self, pod: str, exit_code: int, message: str = "", log: bytes = b"") -> None:
        """The container of ``pod`` ends (what the kubelet would report)."""
        def run() -> None:
            obj = self.store.objects["pods"][pod]
            self.store.logs[pod] = log
            obj["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            obj["status"]["containerStatuses"][0]["state"] = {"terminated": {
                "exitCode": exit_code, "message": message, "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:00:10Z"}}
            self.store.bump(obj)
            self.store.emit("MODIFIED", obj)

        self.call(run)

    def delete_behind_our_back(self, pod: str) -> None:
        def run() -> None:
            obj = self.store.objects["pods"].pop(pod)
            self.store.bump(obj)
            self.store.emit("DELETED", obj)

        self.call(run)

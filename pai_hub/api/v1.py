"""OpenPAI's REST API v1, at ``/api/v1`` and ``/rest-server/api/v1``: what its clients still call.

OpenPAI's master serves under v1 only its index, tokens, ``GET /user/{u}`` and basic login; its
Python SDK (``opai``, ``contrib/python-sdk``) calls those to add a cluster, and the v1 job routes
OpenPAI 1.x still answered by rewriting ``/user/{u}/jobs[/{name}]`` to the v2 job
``{u}~{name}`` to list, show and stop jobs. Each route here is the v2 handler of the same thing,
so v1 and v2 cannot differ in what they allow or answer: the same authentication (OpenPAI 1.x
checked a token on every job route too: a request without one is 401), the same ownership rule
and the same application-token scope. Kubernetes-only routes (``/kubernetes/...``) and OIDC are
not served. ``docs/compat.md`` lists each call of the SDK with its answer here.
"""

from __future__ import annotations

from tornado import web

from . import cluster as cluster_api
from . import jobs as job_api
from . import ssh as ssh_api
from . import users as user_api
from .errors import forbidden

#: Where OpenPAI mounts its v1 routes: directly, and behind its pylon proxy (what the SDK calls).
PREFIXES = ("/api/v1", "/rest-server/api/v1")
USER = r"([^/]+)"
NAME = r"([^/]+)"
FW = r"([^/]+~[^/]+)"


def framework(username: str, name: str) -> str:
    """The v2 id of the job the v1 path ``/user/{username}/jobs/{name}`` names (OpenPAI's rewrite)."""
    return f"{username}~{name}"


class UserHandler(user_api.UserHandler):
    """``GET /user/{u}``: the user's record, as ``GET /api/v2/users/{u}`` (v1 has no writes here)."""

    SUPPORTED_METHODS = ("GET",)


class UserJobsHandler(job_api.JobsHandler):
    """``GET /user/{u}/jobs``: ``u``'s jobs, as ``GET /api/v2/jobs?username=u`` (so a user who is not
    an admin sees only their own); ``POST``: a protocol-v2 submission, as ``POST /api/v2/jobs``."""

    async def get(self, username: str) -> None:  # type: ignore[override]
        self.request.query_arguments["username"] = [username.encode()]
        self.request.arguments["username"] = [username.encode()]
        await super().get()

    async def post(self, username: str) -> None:  # type: ignore[override]
        self.refuse_if_needed()
        if username != self.me.username:  # a job is always submitted as its caller
            raise forbidden(f"User {self.me.username} is not allowed to submit jobs as {username}.")
        await super().post()


class UserJobHandler(job_api.JobHandler):
    """``GET /user/{u}/jobs/{name}``: the job's detail, as ``GET /api/v2/jobs/{u}~{name}``."""

    async def get(self, username: str, name: str) -> None:  # type: ignore[override]
        await super().get(framework(username, name))


class UserJobConfigHandler(job_api.JobConfigHandler):
    """``GET /user/{u}/jobs/{name}/config``: the submitted YAML, secrets masked."""

    async def get(self, username: str, name: str) -> None:  # type: ignore[override]
        await super().get(framework(username, name))


class UserJobExecutionHandler(job_api.ExecutionTypeHandler):
    """``PUT /user/{u}/jobs/{name}/executionType`` ``{"value": "STOP"}``: what ``opai job stop`` sends."""

    async def put(self, username: str, name: str) -> None:  # type: ignore[override]
        await super().put(framework(username, name))


class UserJobSshHandler(ssh_api.SshInfoHandler):
    """``GET /user/{u}/jobs/{name}/ssh``: the ssh plugin's endpoints (404 without the plugin)."""

    async def get(self, username: str, name: str) -> None:  # type: ignore[override]
        await super().get(framework(username, name))


class VirtualClustersHandler(cluster_api.VirtualClustersHandler):
    """``GET /virtual-clusters`` (OpenPAI 0.x's v1 read, ``opai cluster resources``); writes are v2's."""

    SUPPORTED_METHODS = ("GET",)


class VirtualClusterHandler(cluster_api.VirtualClusterHandler):
    SUPPORTED_METHODS = ("GET",)


def table() -> list[tuple[str, type[web.RequestHandler]]]:
    """The v1 routes below a prefix: OpenPAI master's (index, token, user, authn) and the job routes
    of OpenPAI 1.x's v1 rewrite."""
    job = rf"/user/{USER}/jobs/{NAME}"
    return [
        (r"/?", user_api.InfoHandler),  # OpenPAI's index: name, version, launcherType, authnMethod
        (r"/info", user_api.InfoHandler),
        (r"/token", user_api.TokensHandler),  # POST {username, password, expiration}: a token
        (r"/token/application", user_api.ApplicationTokenHandler),
        (r"/token/check", user_api.TokenCheckHandler),
        (r"/token/([^/]+)", user_api.TokenHandler),
        (r"/authn/info", user_api.AuthnInfoHandler),
        (r"/authn/basic/login", user_api.LoginHandler),
        (r"/authn/basic/logout", user_api.LogoutHandler),
        (rf"/user/{USER}", UserHandler),
        (rf"/user/{USER}/jobs", UserJobsHandler),
        (job, UserJobHandler),
        (rf"{job}/config", UserJobConfigHandler),
        (rf"{job}/executionType", UserJobExecutionHandler),
        (rf"{job}/ssh", UserJobSshHandler),
        (r"/jobs", job_api.JobsHandler),  # where OpenPAI 1.x mounted the v2 job routes under v1
        (rf"/jobs/{FW}", job_api.JobHandler),
        (rf"/jobs/{FW}/config", job_api.JobConfigHandler),
        (rf"/jobs/{FW}/executionType", job_api.ExecutionTypeHandler),
        (rf"/jobs/{FW}/ssh", ssh_api.SshInfoHandler),
        (r"/virtual-clusters", VirtualClustersHandler),
        (r"/virtual-clusters/([A-Za-z0-9_-]+)", VirtualClusterHandler),
    ]


def v1_routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """Every v1 route under both prefixes (the app makes each tolerate a trailing slash)."""
    return [(prefix + path, handler) for prefix in PREFIXES for path, handler in table()]

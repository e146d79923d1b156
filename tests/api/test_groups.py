"""Groups grant virtual clusters (OpenPAI §5.3); only admins change them."""

from __future__ import annotations

from tests.server import job_yaml


def test_groups_list_and_builtins(server):
    with server.client() as c:
        names = {g["groupname"] for g in c.get("/api/v2/groups").json()}
        assert {"default", "admingroup"} <= names
        default = c.get("/api/v2/groups/default").json()
        assert default["extension"]["acls"] == {"admin": False, "virtualClusters": ["default"]}
        assert c.get("/api/v2/groups/nope").json()["code"] == "NoGroupError"


def test_admin_manages_groups_and_membership(server):
    frank = server.add_user("frank")
    with server.client() as admin:
        r = admin.post("/api/v2/groups", json={"groupname": "ops", "description": "operators",
                                               "extension": {"acls": {"admin": True}}})
        assert r.status_code == 201, r.text
        r = admin.post("/api/v2/groups", json={"groupname": "ops"})
        assert r.status_code == 409 and r.json()["code"] == "ConflictGroupError"
        r = admin.post("/api/v2/groups", json={"groupname": "bad name"})
        assert r.status_code == 400 and "groupname" in r.json()["message"]
        r = admin.put("/api/v2/groups/ops", json={"virtualClusters": ["nowhere"]})
        assert r.status_code == 400 and r.json()["code"] == "NoVirtualClusterError"
        assert admin.put("/api/v2/users/frank/group", json={"groupname": "ops"}).status_code == 201
        assert "ops" in admin.get("/api/v2/users/frank").json()["grouplist"]
        assert admin.get("/api/v2/users/frank").json()["admin"] is True  # the group carries admin
        members = admin.get("/api/v2/groups/ops/userlist").json()
        assert members == [{"username": "frank", "clusterAdmin": False}]
        r = admin.put("/api/v2/users/frank/grouplist", json={"grouplist": ["nosuch"]})
        assert r.status_code == 404 and r.json()["code"] == "NoGroupError"
        assert admin.put("/api/v2/users/frank/grouplist", json={"grouplist": []}).status_code == 201
        assert admin.get("/api/v2/users/frank").json()["grouplist"] == ["default"]
        assert admin.delete("/api/v2/groups/ops").status_code == 200
        assert admin.delete("/api/v2/groups/default").status_code == 403
    with server.client(frank) as c:
        assert c.get("/api/v2/users/me").json()["admin"] is False
        assert c.post("/api/v2/groups", json={"groupname": "mine"}).status_code == 403
        assert c.put("/api/v2/groups/default", json={"virtualClusters": []}).status_code == 403


def test_vc_access_follows_group_membership(server):
    gina = server.add_user("gina")
    with server.client() as admin:
        # a user outside every group that grants "default" may not submit there
        assert admin.put("/api/v2/groups/default", json={"virtualClusters": []}).status_code == 201
        try:
            with server.client(gina) as c:
                r = c.post("/api/v2/jobs", content=job_yaml("vc-denied", ["true"]))
                assert r.status_code == 403
                assert r.json() == {"code": "ForbiddenUserError",
                                    "message": "User gina is not allowed to do operation in default"}
        finally:
            assert admin.put("/api/v2/groups/default", json={"virtualClusters": ["default"]}).status_code == 201
        with server.client(gina) as c:
            assert c.post("/api/v2/jobs", content=job_yaml("vc-allowed", ["true"])).status_code == 202

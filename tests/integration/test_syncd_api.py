"""mqsyncd HTTP API (SPEC 5): every endpoint's happy path and error codes, multi-device sync,
membership and token changes. One PostgreSQL + mqsyncd for the whole file; tests use distinct
users and groups."""
import os
import time
import unittest

import harness


def send(conn, gid, sender, payloads, cid=None):
    """Appends messages the way every writer does (SPEC 7.2): bump last_seq under the row lock,
    insert the rows numbered below it, commit. Returns [(id, seq)]."""
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("UPDATE groups SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq", (len(payloads), gid))
    last = cur.fetchone()[0]
    out = []
    for i, p in enumerate(payloads):
        seq = last - len(payloads) + 1 + i
        cur.execute("INSERT INTO messages (group_id, seq, sender, payload, cid) VALUES (%s, %s, %s, %s, %s) "
                    "RETURNING id", (gid, seq, sender, p if isinstance(p, bytes) else p.encode(), cid))
        out.append((cur.fetchone()[0], seq))
    cur.execute("COMMIT")
    return out


class ApiTest(harness.SharedServersTest):
    @classmethod
    def setUpClass(cls):
        cls.h = harness.Harness("syncd-api").__enter__()
        try:
            cls.pg = cls.h.postgres()
            cls.tok = {u: cls.h.user_add(u) for u in
                       ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kim", "ned")}
            os.environ["MQSYNC_RECEIPTS_MAX_MEMBERS"] = "4"
            try:
                cls.sd = cls.h.syncd()
            finally:
                del os.environ["MQSYNC_RECEIPTS_MAX_MEMBERS"]
            cls.db = cls.pg.connect()
        except BaseException:
            cls.h.__exit__(*__import__("sys").exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        cls.close_shared()

    def req(self, method, path, body=None, user=None, token=None, **kw):
        if user == "admin":
            token = self.sd.admin_token
        elif user is not None:
            token = self.tok[user]
        return self.sd.request(method, path, body=body, token=token, **kw)

    def ok(self, method, path, body=None, user=None, status=200):
        s, b, _ = self.req(method, path, body, user)
        self.assertEqual(s, status, b)
        return b

    def err(self, status, code, method, path, body=None, user=None, **kw):
        s, b, h = self.req(method, path, body, user, **kw)
        self.assertEqual(s, status, b)
        self.assertEqual(b["error"]["code"], code, b)
        self.assertTrue(b["error"]["message"])
        self.assertEqual(h["Content-Type"], "application/json")
        return b

    # -- authentication ---------------------------------------------------------------------

    def test_auth(self):
        s, b, h = self.sd.request("GET", "/groups")
        self.assertEqual(s, 401)
        self.assertEqual(b["error"]["code"], "unauthorized")
        self.assertEqual(h["WWW-Authenticate"], "Bearer")
        self.err(401, "unauthorized", "GET", "/groups", token="not-a-token")
        self.err(401, "unauthorized", "GET", "/groups", headers={"Authorization": "Basic YWxpY2U6eA=="})
        self.err(401, "unauthorized", "GET", "/groups", headers={"Authorization": "Bearer"})
        # The admin token is not a user; users are not the admin.
        self.err(403, "forbidden", "GET", "/messages/sync", user="admin")
        self.err(403, "forbidden", "POST", "/users", {"id": "zed"}, user="alice")
        self.err(403, "forbidden", "DELETE", "/users/bob", user="alice")
        # Errors for unknown paths and methods come before authentication.
        self.err(404, "not_found", "GET", "/nothing/here")
        self.err(405, "method_not_allowed", "DELETE", "/messages/sync")
        self.err(405, "method_not_allowed", "PATCH", "/groups/x")

    def test_every_route_needs_a_token(self):
        routes = [("GET", "/messages/sync"), ("POST", "/messages/ack"), ("GET", "/messages/1/status"),
                  ("PUT", "/groups/g/read"), ("GET", "/groups/g/messages"), ("POST", "/groups"), ("GET", "/groups"),
                  ("GET", "/groups/g"), ("GET", "/groups/g/members"), ("PUT", "/groups/g/members/u"),
                  ("DELETE", "/groups/g/members/u"), ("GET", "/presence"), ("POST", "/users"),
                  ("POST", "/users/u/token"), ("DELETE", "/users/u")]
        for method, path in routes:
            body = {} if method in ("POST", "PUT") else None
            s, b, h = self.sd.request(method, path, body=body)
            self.assertEqual((s, b["error"]["code"], h["WWW-Authenticate"]), (401, "unauthorized", "Bearer"),
                             (method, path))
            s, b, _ = self.sd.request("PATCH", path, token=self.tok["alice"])
            self.assertEqual((s, b["error"]["code"]), (405, "method_not_allowed"), path)
        for method, path in (("GET", "/messages/sync"), ("POST", "/messages/ack"), ("GET", "/messages/1/status"),
                             ("PUT", "/groups/g/read"), ("GET", "/groups/g/messages"), ("GET", "/groups"),
                             ("GET", "/presence")):
            body = {} if method in ("POST", "PUT") else None
            self.err(403, "forbidden", method, path, body, "admin")

    # -- groups and members -----------------------------------------------------------------

    def test_groups_and_members(self):
        g = self.ok("POST", "/groups", {"id": "g-team", "name": "Team", "members": ["bob", "carol"]}, "alice", 201)
        self.assertEqual(set(g), {"id", "name", "created_by", "created_at", "last_seq", "member_count"})
        self.assertEqual((g["id"], g["name"], g["created_by"], g["last_seq"], g["member_count"]),
                         ("g-team", "Team", "alice", 0, 3))
        self.assertRegex(g["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.err(409, "conflict", "POST", "/groups", {"id": "g-team"}, "bob")
        self.err(400, "bad_request", "POST", "/groups", {"id": "g-x", "members": ["nobody"]}, "alice")
        self.assertEqual(self.pg.psql("SELECT count(*) FROM groups WHERE id = 'g-x'"), "0")
        gen = self.ok("POST", "/groups", {"members": []}, "dave", 201)
        self.assertRegex(gen["id"], r"^[A-Za-z0-9_-]{16}$")
        self.assertEqual((gen["name"], gen["member_count"]), ("", 1))
        # The admin token may create a group it is not part of.
        adm = self.ok("POST", "/groups", {"id": "g-adm", "members": ["erin"]}, "admin", 201)
        self.assertEqual((adm["created_by"], adm["member_count"]), (None, 1))

        lst = self.ok("GET", "/groups", user="bob")["groups"]
        team = [x for x in lst if x["id"] == "g-team"][0]
        self.assertEqual(team, {"id": "g-team", "name": "Team", "role": "member", "last_seq": 0,
                                "delivered_seq": 0, "read_seq": 0, "unread": 0})
        self.assertEqual([x["role"] for x in self.ok("GET", "/groups", user="alice")["groups"]
                          if x["id"] == "g-team"], ["admin"])

        self.assertEqual(self.ok("GET", "/groups/g-team", user="carol")["member_count"], 3)
        self.assertEqual(self.ok("GET", "/groups/g-team", user="admin")["id"], "g-team")
        self.err(403, "forbidden", "GET", "/groups/g-team", user="dave")
        self.err(404, "not_found", "GET", "/groups/g-none", user="dave")
        self.err(400, "bad_request", "GET", "/groups/bad.id", user="dave")

        members = self.ok("GET", "/groups/g-team/members", user="bob")["members"]
        self.assertEqual([m["user"] for m in members], ["alice", "bob", "carol"])
        self.assertEqual(members[1], {"user": "bob", "role": "member", "delivered_seq": 0, "read_seq": 0,
                                      "online": False})
        self.err(403, "forbidden", "GET", "/groups/g-team/members", user="dave")

        send(self.db, "g-team", "alice", ["one", "two"])
        # Only group admins (or the admin token) add members; adding is idempotent.
        self.err(403, "forbidden", "PUT", "/groups/g-team/members/dave", user="bob")
        self.err(403, "forbidden", "PUT", "/groups/g-team/members/dave", user="dave")
        m = self.ok("PUT", "/groups/g-team/members/dave", user="alice")
        self.assertEqual(m, {"user": "dave", "role": "member", "delivered_seq": 2, "read_seq": 2, "online": False})
        self.assertEqual(self.ok("PUT", "/groups/g-team/members/dave", user="alice"), m)
        self.assertEqual(self.pg.psql("SELECT joined_seq FROM memberships WHERE group_id='g-team' AND user_id='dave'"),
                         "2")
        self.assertEqual(self.ok("PUT", "/groups/g-team/members/dave", {"role": "admin"}, "admin")["role"], "admin")
        self.assertEqual(self.ok("PUT", "/groups/g-team/members/dave", {"role": "member"}, "dave")["role"], "member")
        self.err(404, "not_found", "PUT", "/groups/g-team/members/nobody", user="alice")
        self.err(404, "not_found", "PUT", "/groups/g-none/members/bob", user="admin")
        self.err(400, "bad_request", "PUT", "/groups/g-team/members/bob", {"role": "owner"}, "alice")
        # The new member sees messages from now on.
        self.assertEqual(self.ok("GET", "/messages/sync?group=g-team", user="dave")["messages"], [])
        self.assertEqual(self.ok("GET", "/groups/g-team/messages", user="dave")["messages"], [])
        send(self.db, "g-team", "bob", ["three"])
        self.assertEqual([x["seq"] for x in self.ok("GET", "/messages/sync?group=g-team", user="dave")["messages"]],
                         [3])
        # Removal: a group admin, the admin token, or the member itself.
        self.err(403, "forbidden", "DELETE", "/groups/g-team/members/carol", user="bob")
        self.ok("DELETE", "/groups/g-team/members/carol", user="carol", status=204)
        self.err(404, "not_found", "DELETE", "/groups/g-team/members/carol", user="alice")
        self.ok("DELETE", "/groups/g-team/members/dave", user="alice", status=204)
        self.ok("DELETE", "/groups/g-team/members/bob", user="admin", status=204)
        self.err(403, "forbidden", "GET", "/messages/sync?group=g-team", user="bob")
        self.assertEqual(self.pg.psql("SELECT string_agg(user_id, ',' ORDER BY user_id) FROM memberships "
                                      "WHERE group_id = 'g-team'"), "alice")

    def test_history(self):
        self.ok("POST", "/groups", {"id": "g-hist", "members": ["bob"]}, "alice", 201)
        send(self.db, "g-hist", "alice", ["m%d" % i for i in range(1, 11)])
        newest = self.ok("GET", "/groups/g-hist/messages?limit=3", user="bob")["messages"]
        self.assertEqual([m["seq"] for m in newest], [10, 9, 8])
        before = self.ok("GET", "/groups/g-hist/messages?before=8&limit=3", user="bob")["messages"]
        self.assertEqual([m["seq"] for m in before], [7, 6, 5])
        after = self.ok("GET", "/groups/g-hist/messages?after=2&limit=3", user="bob")["messages"]
        self.assertEqual([m["seq"] for m in after], [3, 4, 5])
        both = self.ok("GET", "/groups/g-hist/messages?after=2&before=5", user="bob")["messages"]
        self.assertEqual([m["seq"] for m in both], [3, 4])
        self.assertEqual(after[0]["payload"], "m3")
        self.err(403, "forbidden", "GET", "/groups/g-hist/messages", user="carol")
        self.err(404, "not_found", "GET", "/groups/g-nohist/messages", user="carol")
        self.err(400, "bad_request", "GET", "/groups/g-hist/messages?before=0", user="bob")
        self.err(400, "bad_request", "GET", "/groups/g-hist/messages?limit=1001", user="bob")
        self.err(400, "bad_request", "GET", "/groups/g-hist/messages?page=2", user="bob")
        # From the join point only.
        self.ok("PUT", "/groups/g-hist/members/carol", user="alice")
        send(self.db, "g-hist", "alice", ["after join"])
        self.assertEqual([m["seq"] for m in self.ok("GET", "/groups/g-hist/messages?after=0",
                                                     user="carol")["messages"]], [11])

    # -- sync, ack, read, status ----------------------------------------------------------------

    def test_sync_ack_read(self):
        self.ok("POST", "/groups", {"id": "g-sync", "members": ["kim"]}, "alice", 201)
        self.ok("POST", "/groups", {"id": "g-sync2", "members": ["kim"]}, "carol", 201)
        sent = send(self.db, "g-sync", "alice", ["hello", b"\xff\x00\x01", "caf\u00e9"])
        send(self.db, "g-sync2", "carol", ["x1", "x2"], cid=None)
        cid_id = send(self.db, "g-sync2", "carol", ["with cid"], cid="c-123")[0][0]
        page = self.ok("GET", "/messages/sync", user="kim")
        self.assertEqual(set(page), {"messages", "has_more", "next"})
        self.assertFalse(page["has_more"])
        msgs = page["messages"]
        self.assertEqual([(m["group"], m["seq"]) for m in msgs],
                         [("g-sync", 1), ("g-sync", 2), ("g-sync", 3), ("g-sync2", 1), ("g-sync2", 2),
                          ("g-sync2", 3)])
        m0 = msgs[0]
        self.assertEqual(set(m0), {"id", "group", "seq", "sender", "ts", "payload", "encoding"})
        self.assertEqual((m0["id"], m0["sender"], m0["payload"], m0["encoding"]),
                         (sent[0][0], "alice", "hello", "utf8"))
        self.assertRegex(m0["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((msgs[1]["payload"], msgs[1]["encoding"]), ("/wAB", "base64"))
        self.assertEqual((msgs[2]["payload"], msgs[2]["encoding"]), ("caf\u00e9", "utf8"))
        self.assertEqual((msgs[5]["id"], msgs[5]["cid"]), (cid_id, "c-123"))
        # ts agrees with the plugin's expression.
        self.assertEqual(self.pg.psql("SELECT to_char(created_at AT TIME ZONE 'UTC', "
                                      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM messages WHERE id = %d" % m0["id"]),
                         m0["ts"])

        # Paging: limit and after, without acknowledging.
        p1 = self.ok("GET", "/messages/sync?limit=4", user="kim")
        self.assertEqual(len(p1["messages"]), 4)
        self.assertTrue(p1["has_more"])
        p2 = self.ok("GET", "/messages/sync?limit=4&after=" + p1["next"], user="kim")
        self.assertEqual([(m["group"], m["seq"]) for m in p2["messages"]], [("g-sync2", 2), ("g-sync2", 3)])
        self.assertFalse(p2["has_more"])
        p3 = self.ok("GET", "/messages/sync?after=" + p2["next"], user="kim")
        self.assertEqual((p3["messages"], p3["has_more"]), ([], False))
        self.assertEqual([m["seq"] for m in self.ok("GET", "/messages/sync?group=g-sync2", user="kim")["messages"]],
                         [1, 2, 3])
        self.assertEqual(self.pg.psql("SELECT delivered_seq FROM memberships WHERE user_id='kim' AND "
                                      "group_id='g-sync'"), "0")

        # Ack, both forms, cumulative.
        r = self.ok("POST", "/messages/ack", {"acks": [{"group": "g-sync", "seq": 2}, {"group": "g-sync", "seq": 1}]},
                    "kim")
        self.assertEqual(r, {"cursors": [{"group": "g-sync", "delivered_seq": 2, "read_seq": 0}]})
        r = self.ok("POST", "/messages/ack", {"ids": [sent[2][0], cid_id]}, "kim")
        self.assertEqual(r["cursors"], [{"group": "g-sync", "delivered_seq": 3, "read_seq": 0},
                                        {"group": "g-sync2", "delivered_seq": 3, "read_seq": 0}])
        self.assertEqual(self.ok("POST", "/messages/ack", {"acks": [{"group": "g-sync", "seq": 1}]}, "kim")["cursors"],
                         [{"group": "g-sync", "delivered_seq": 3, "read_seq": 0}])
        self.assertEqual(self.ok("GET", "/messages/sync", user="kim")["messages"], [])
        self.err(403, "forbidden", "POST", "/messages/ack", {"acks": [{"group": "g-sync", "seq": 1}]}, "ned")
        self.err(403, "forbidden", "POST", "/messages/ack", {"acks": [{"group": "g-nope", "seq": 1}]}, "ned")
        self.err(403, "forbidden", "POST", "/messages/ack", {"ids": [sent[0][0]]}, "ned")
        self.err(400, "bad_request", "POST", "/messages/ack", {"acks": [{"group": "g-sync", "seq": 4}]}, "kim")
        self.err(404, "not_found", "POST", "/messages/ack", {"ids": [999999]}, "kim")
        self.err(400, "bad_request", "POST", "/messages/ack", {"acks": [], "ids": []}, "kim")
        self.err(400, "bad_request", "POST", "/messages/ack", {}, "kim")

        # Read markers.
        r = self.ok("PUT", "/groups/g-sync/read", {"seq": 2}, "alice")
        self.assertEqual(r, {"group": "g-sync", "delivered_seq": 2, "read_seq": 2})
        r = self.ok("PUT", "/groups/g-sync/read", {"last_message_id": sent[0][0]}, "alice")
        self.assertEqual(r, {"group": "g-sync", "delivered_seq": 2, "read_seq": 2})
        r = self.ok("PUT", "/groups/g-sync/read", {"last_message_id": sent[2][0]}, "kim")
        self.assertEqual(r, {"group": "g-sync", "delivered_seq": 3, "read_seq": 3})
        self.err(400, "bad_request", "PUT", "/groups/g-sync/read", {"seq": 99}, "kim")
        self.err(400, "bad_request", "PUT", "/groups/g-sync/read", {"last_message_id": cid_id}, "kim")
        self.err(400, "bad_request", "PUT", "/groups/g-sync/read", {"seq": 1, "last_message_id": 1}, "kim")
        self.err(403, "forbidden", "PUT", "/groups/g-sync/read", {"seq": 1}, "ned")
        self.err(404, "not_found", "PUT", "/groups/g-nope/read", {"seq": 1}, "ned")
        self.err(400, "bad_request", "PUT", "/groups/g-sync/read", None, "kim")
        self.assertEqual([g["unread"] for g in self.ok("GET", "/groups", user="kim")["groups"] if g["id"] == "g-sync"],
                         [0])

    def test_status(self):
        self.ok("POST", "/groups", {"id": "g-stat", "members": ["bob", "carol"]}, "alice", 201)
        (mid, seq), = send(self.db, "g-stat", "alice", ["status?"])
        self.ok("PUT", "/groups/g-stat/members/dave", user="alice")  # joined after: not a recipient
        self.ok("POST", "/messages/ack", {"acks": [{"group": "g-stat", "seq": 1}]}, "bob")
        cur = self.db.cursor()
        cur.execute("INSERT INTO presence (user_id, node, connections, last_seen) VALUES "
                    "('carol', 'n1', 1, now()), ('carol', 'n2', 0, now())")
        st = self.ok("GET", "/messages/%d/status" % mid, user="dave")
        self.assertEqual(st, {"id": mid, "group": "g-stat", "seq": 1, "sender": "alice",
                              "counts": {"pending": 1, "delivered": 1, "read": 0},
                              "recipients": [{"user": "bob", "status": "delivered"},
                                             {"user": "carol", "status": "pending", "online": True}]})
        cur.execute("UPDATE presence SET last_seen = now() - interval '91 seconds' WHERE user_id = 'carol'")
        self.ok("PUT", "/groups/g-stat/read", {"seq": 1}, "bob")
        st = self.ok("GET", "/messages/%d/status" % mid, user="alice")
        self.assertEqual(st["recipients"], [{"user": "bob", "status": "read"},
                                            {"user": "carol", "status": "pending", "online": False}])
        self.assertEqual(st["counts"], {"pending": 1, "delivered": 0, "read": 1})
        # Above the receipts limit (4 here; the group now has 5 members): counts only.
        self.ok("PUT", "/groups/g-stat/members/erin", user="alice")
        st = self.ok("GET", "/messages/%d/status" % mid, user="alice")
        self.assertNotIn("recipients", st)
        self.assertEqual(st["counts"], {"pending": 1, "delivered": 0, "read": 1})
        self.err(403, "forbidden", "GET", "/messages/%d/status" % mid, user="frank")
        self.err(404, "not_found", "GET", "/messages/987654/status", user="frank")
        self.err(400, "bad_request", "GET", "/messages/abc/status", user="frank")
        self.err(400, "bad_request", "GET", "/messages/-1/status", user="frank")

    def test_multi_device(self):
        """Two devices of one user: one acks, the other syncing from its own `next` still gets all."""
        self.ok("POST", "/groups", {"id": "g-md1", "members": ["gina"]}, "hank", 201)
        self.ok("POST", "/groups", {"id": "g-md2", "members": ["gina"]}, "hank", 201)
        send(self.db, "g-md1", "hank", ["a1", "a2"])
        phone = self.ok("GET", "/messages/sync", user="gina")
        laptop = self.ok("GET", "/messages/sync", user="gina")
        self.assertEqual(len(phone["messages"]), 2)
        self.ok("POST", "/messages/ack", {"acks": [{"group": "g-md1", "seq": 2}]}, "gina")
        send(self.db, "g-md1", "hank", ["a3"])
        send(self.db, "g-md2", "hank", ["b1"])
        # The phone acks everything it got ...
        p = self.ok("GET", "/messages/sync?after=" + phone["next"], user="gina")
        self.assertEqual([(m["group"], m["seq"]) for m in p["messages"]], [("g-md1", 3), ("g-md2", 1)])
        self.ok("POST", "/messages/ack", {"ids": [m["id"] for m in p["messages"]]}, "gina")
        self.assertEqual(self.ok("GET", "/messages/sync", user="gina")["messages"], [])
        # ... the laptop, from its own position, still gets all of it (and the phone's first page).
        l1 = self.ok("GET", "/messages/sync?after=" + laptop["next"], user="gina")
        self.assertEqual([(m["group"], m["seq"]) for m in l1["messages"]], [("g-md1", 3), ("g-md2", 1)])
        fresh = self.ok("GET", "/messages/sync?limit=1&after=AQ", user="gina")  # a device with no position yet
        self.assertEqual([(m["group"], m["seq"]) for m in fresh["messages"]], [("g-md1", 1)])
        self.assertTrue(fresh["has_more"])
        l2 = self.ok("GET", "/messages/sync?after=" + l1["next"], user="gina")
        self.assertEqual(l2["messages"], [])
        # A group joined after the token was made is read from the join point.
        self.ok("POST", "/groups", {"id": "g-md3", "members": ["gina"]}, "hank", 201)
        send(self.db, "g-md3", "hank", ["c1"])
        l3 = self.ok("GET", "/messages/sync?after=" + l2["next"], user="gina")
        self.assertEqual([(m["group"], m["seq"]) for m in l3["messages"]], [("g-md3", 1)])
        self.err(400, "bad_request", "GET", "/messages/sync?after=garbage!", user="gina")

    # -- users and tokens ----------------------------------------------------------------------

    def test_users_and_tokens(self):
        r = self.ok("POST", "/users", {"id": "newbie"}, "admin", 201)
        self.assertEqual(r["id"], "newbie")
        self.assertRegex(r["token"], r"^[A-Za-z0-9_-]{43}$")
        t1 = r["token"]
        self.assertEqual(self.sd.request("GET", "/groups", token=t1)[0], 200)
        self.err(409, "conflict", "POST", "/users", {"id": "newbie"}, "admin")
        self.err(400, "bad_request", "POST", "/users", {"id": "bad id"}, "admin")
        self.err(400, "bad_request", "POST", "/users", {"id": "x", "admin": "yes"}, "admin")
        r = self.ok("POST", "/users", {"id": "boss", "admin": True}, "admin", 201)
        self.assertEqual(self.pg.psql("SELECT is_admin FROM users WHERE id = 'boss'"), "t")

        # Rotation by the user: the old token is dead at once, the new one works.
        t2 = self.sd.request("POST", "/users/newbie/token", token=t1)[1]["token"]
        self.assertNotEqual(t1, t2)
        self.assertEqual(self.sd.request("GET", "/groups", token=t1)[0], 401)
        self.assertEqual(self.sd.request("GET", "/groups", token=t2)[0], 200)
        # Rotation by the admin token; other users may not.
        t3 = self.ok("POST", "/users/newbie/token", None, "admin", 201)["token"]
        self.assertEqual(self.sd.request("GET", "/groups", token=t2)[0], 401)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM user_tokens WHERE user_id = 'newbie'"), "1")
        self.err(403, "forbidden", "POST", "/users/newbie/token", None, "bob")
        self.err(404, "not_found", "POST", "/users/ghost/token", None, "admin")

        # Deletion removes tokens and memberships.
        self.ok("POST", "/groups", {"id": "g-del", "members": ["newbie"]}, "ivan", 201)
        self.ok("DELETE", "/users/newbie", None, "admin", 204)
        self.assertEqual(self.sd.request("GET", "/groups", token=t3)[0], 401)
        self.assertEqual(self.ok("GET", "/groups/g-del", user="ivan")["member_count"], 1)
        self.err(404, "not_found", "DELETE", "/users/newbie", None, "admin")

    def test_presence(self):
        self.ok("POST", "/groups", {"id": "g-pres", "members": ["judy"]}, "ivan", 201)
        cur = self.db.cursor()
        cur.execute("INSERT INTO presence (user_id, node, connections, last_seen) VALUES "
                    "('judy', 'n1', 2, '2026-01-02T03:04:05.678Z'), ('judy', 'n2', 1, now()), "
                    "('frank', 'n1', 1, now())")
        r = self.ok("GET", "/presence?users=judy,frank,ivan", user="ivan")["presence"]
        self.assertEqual([p["user"] for p in r], ["ivan", "judy"])  # frank shares no group with ivan
        self.assertEqual(r[0], {"user": "ivan", "online": False, "last_seen": None})
        self.assertTrue(r[1]["online"])
        self.assertRegex(r[1]["last_seen"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        every = self.ok("GET", "/presence", user="judy")["presence"]
        self.assertEqual([p["user"] for p in every], ["ivan", "judy"])
        self.err(400, "bad_request", "GET", "/presence?users=a,,b", user="ivan")
        self.err(400, "bad_request", "GET", "/presence?users=../x", user="ivan")

    def test_metrics_and_health(self):
        self.assertEqual(self.ok("GET", "/healthz"), {"status": "ok"})
        self.ok("GET", "/groups", user="alice")
        s, text, h = self.sd.request("GET", "/metrics")
        self.assertEqual(s, 200)
        self.assertTrue(h["Content-Type"].startswith("text/plain"))
        self.assertIn('mqsyncd_requests_total{route="GET /groups",status="200"}', text)
        self.assertIn('mqsyncd_request_duration_seconds_bucket{route="GET /groups",le="+Inf"}', text)
        self.assertIn("mqsyncd_messages_returned_total", text)
        self.assertIn("mqsyncd_db_pool_connections 4", text)
        self.assertIn("mqsyncd_db_pool_in_use 0", text)
        self.assertIn("mqsyncd_longpoll_waiting 0", text)
        self.assertIn("mqsyncd_listener_connected 1", text)


if __name__ == "__main__":
    unittest.main()

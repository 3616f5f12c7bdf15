"""mqsyncd under garbage input: malformed JSON, wrong types, huge numbers, negative limits, unknown
fields, invalid UTF-8, oversized bodies, wrong content types and path traversal. Each gets a clear
4xx error object, and nothing is written to the database."""
import http.client
import socket
import unittest

import harness

TABLES = ("users", "user_tokens", "groups", "memberships", "messages", "presence")


class GarbageTest(harness.SharedServersTest):
    @classmethod
    def setUpClass(cls):
        cls.h = harness.Harness("syncd-garbage").__enter__()
        try:
            cls.pg = cls.h.postgres()
            cls.alice = cls.h.user_add("alice")
            cls.h.user_add("bob")
            cls.sd = cls.h.syncd()
            s, _, _ = cls.sd.request("POST", "/groups", {"id": "fam", "members": ["bob"]}, token=cls.alice)
            assert s == 201
            cls.pg.psql("BEGIN; UPDATE groups SET last_seq = 1 WHERE id = 'fam'; INSERT INTO messages "
                        "(group_id, seq, sender, payload) VALUES ('fam', 1, 'bob', 'hi'); COMMIT")
        except BaseException:
            cls.h.__exit__(*__import__("sys").exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        cls.close_shared()

    def snapshot(self):
        return {t: self.pg.psql("SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM %s x" % t)
                for t in TABLES}

    def setUp(self):
        self.before = self.snapshot()

    def tearDown(self):
        self.assertEqual(self.snapshot(), self.before, "garbage input changed the database")

    def raw(self, method, path, body, ctype="application/json", token=True, status=400, code="bad_request"):
        headers = {"Authorization": "Bearer " + self.alice} if token else {}
        if ctype is not None:
            headers["Content-Type"] = ctype
        s, b, h = self.sd.request(method, path, raw=body, headers=headers)
        self.assertEqual(s, status, (method, path, body[:80] if body else body, str(b)[:300]))
        self.assertIsInstance(b, dict, b)
        self.assertEqual(b["error"]["code"], code)
        self.assertTrue(b["error"]["message"])
        return b["error"]["message"]

    def test_malformed_json(self):
        for body in (b"{", b"{\"acks\": [}", b"null", b"[]", b"\"acks\"", b"{\"ids\": [1]} trailing",
                     b"{'ids': [1]}", b"{\"ids\": [1], \"ids\": [2]}", b"\x00\x01\x02", b"{\"ids\": [NaN]}"):
            self.raw("POST", "/messages/ack", body)
        self.raw("POST", "/groups", b"")  # a body is required

    def test_wrong_types(self):
        cases = [
            (b'{"acks": {"group": "fam", "seq": 1}}', "acks"),
            (b'{"acks": [{"group": "fam", "seq": "1"}]}', "acks[0].seq"),
            (b'{"acks": [{"group": "fam", "seq": 1.5}]}', "acks[0].seq"),
            (b'{"acks": [{"group": 7, "seq": 1}]}', "acks[0].group"),
            (b'{"acks": [{"group": "fam", "seq": true}]}', "acks[0].seq"),
            (b'{"acks": ["fam"]}', "acks[0]"),
            (b'{"ids": ["1"]}', "ids[0]"),
            (b'{"ids": [-1]}', "ids[0]"),
            (b'{"ids": [0]}', "ids[0]"),
            (b'{"acks": [{"group": "fam", "seq": -1}]}', "acks[0].seq"),
            (b'{"acks": [{"group": "fam"}]}', "acks[0].seq"),
        ]
        for body, field in cases:
            msg = self.raw("POST", "/messages/ack", body)
            self.assertIn(field, msg)
        self.assertIn("name", self.raw("POST", "/groups", b'{"id": "g1", "name": 5}'))
        self.assertIn("members", self.raw("POST", "/groups", b'{"id": "g1", "members": "bob"}'))
        self.assertIn("members[1]", self.raw("POST", "/groups", b'{"id": "g1", "members": ["bob", 1]}'))
        self.assertIn("id", self.raw("POST", "/groups", b'{"id": "../etc/passwd"}'))
        self.assertIn("id", self.raw("POST", "/groups", b'{"id": "' + b"x" * 65 + b'"}'))
        self.assertIn("seq", self.raw("PUT", "/groups/fam/read", b'{"seq": "1"}'))
        self.assertIn("role", self.raw("PUT", "/groups/fam/members/bob", b'{"role": ["admin"]}'))

    def test_huge_numbers(self):
        for n in (b"99999999999999999999", b"1e400", b"-99999999999999999999", b"9223372036854775808",
                  b"18446744073709551616"):
            self.raw("POST", "/messages/ack", b'{"acks": [{"group": "fam", "seq": ' + n + b'}]}')
            self.raw("PUT", "/groups/fam/read", b'{"seq": ' + n + b'}')
        # In range for JSON, beyond the group: still a 400, nothing written.
        self.raw("POST", "/messages/ack", b'{"acks": [{"group": "fam", "seq": 9223372036854775807}]}')

    def test_query_parameters(self):
        def get(path, status=400):
            s, b, _ = self.sd.request("GET", path, token=self.alice)
            self.assertEqual(s, status, (path[:100], str(b)[:300]))
            if status >= 400:
                self.assertEqual(b["error"]["code"], "bad_request")
            return b
        for q in ("limit=-1", "limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=99999999999999999999",
                  "limit=", "wait=-1", "wait=61", "wait=1e3", "group=../x", "group=", "after=%00",
                  "after=AQ%3D%3D", "after=" + "A" * 65537, "bogus=1"):
            get("/messages/sync?" + q)
        self.assertIn("limit", get("/messages/sync?limit=-5")["error"]["message"])
        get("/messages/sync?limit=1000&wait=0", 200)
        get("/groups/fam/messages?before=-1")
        get("/groups/fam/messages?after=x")
        # A request line beyond what any token needs: refused by the HTTP layer, still a 4xx.
        s, _, _ = self.sd.request("GET", "/messages/sync?after=" + "A" * 300000, token=self.alice)
        self.assertTrue(400 <= s < 500, s)

    def test_invalid_utf8(self):
        for body in (b'{"id": "g\xff"}', b'{"name": "\xc3\x28", "id": "g2"}', b'{"id": "g3", "name": "\xed\xa0\x80"}'):
            self.raw("POST", "/groups", body)
        self.raw("POST", "/users", b'{"id": "\xfe\xff"}', token=False, status=401, code="unauthorized")

    def test_unknown_fields(self):
        self.assertIn("bogus", self.raw("POST", "/messages/ack", b'{"ids": [1], "bogus": 1}'))
        self.assertIn("extra", self.raw("POST", "/messages/ack", b'{"acks": [{"group": "fam", "seq": 1, "extra": 1}]}'))
        self.assertIn("owner", self.raw("POST", "/groups", b'{"id": "g4", "owner": "alice"}'))
        self.raw("PUT", "/groups/fam/read", b'{"seq": 1, "read": 2}')
        # A key that is not a plain name is still refused, without echoing it.
        self.raw("POST", "/groups", b'{"id": "g5", "\\u0000<script>": 1}')

    def test_bodies_and_types(self):
        self.raw("POST", "/groups", b"x" * (2 * 1024 * 1024), status=413, code="too_large")
        self.raw("POST", "/messages/ack", b'{"ids": [' + b"1," * 600000 + b'1]}', status=413, code="too_large")
        big_ok = b'{"ids": [' + b",".join([b"1"] * 20000) + b']}'  # < 1 MiB but too many entries
        self.assertIn("ids", self.raw("POST", "/messages/ack", big_ok))
        self.raw("POST", "/groups", b'{"id": "g6"}', ctype="text/plain", status=415, code="unsupported_media_type")
        # No Content-Type at all (the harness client always sends one).
        conn = http.client.HTTPConnection("127.0.0.1", self.sd.port, timeout=10)
        conn.request("POST", "/groups", body=b'{"id": "g6"}', headers={"Authorization": "Bearer " + self.alice})
        r = conn.getresponse()
        self.assertEqual((r.status, __import__("json").loads(r.read())["error"]["code"]), (415, "unsupported_media_type"))
        conn.close()
        self.raw("POST", "/groups", b"id=g6", ctype="application/x-www-form-urlencoded", status=415,
                 code="unsupported_media_type")
        self.raw("GET", "/groups", b'{"x": 1}')  # GET takes no body

    def test_path_traversal(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sd.port, timeout=10)
        for path in ("/groups/..%2f..", "/groups/..%2F..%2Fusers", "/groups/../users", "/groups/%2e%2e",
                     "/groups/fam%00/members", "/groups/fam/members/..%2fbob", "/users/..%2f..%2fetc%2fpasswd/token",
                     "/groups/fam/../fam/members", "//groups", "/groups/", "/groups//members",
                     "/messages/1%2f..%2f2/status", "/groups/" + "a" * 65):
            for method in ("GET", "PUT", "DELETE", "POST"):
                conn.request(method, path, body=b"" if method in ("PUT", "POST") else None,
                             headers={"Authorization": "Bearer " + self.alice})
                r = conn.getresponse()
                body = r.read()
                self.assertIn(r.status, (400, 403, 404, 405), (method, path, r.status, body[:200]))
        # A method that is not even valid UTF-8 still gets a JSON 4xx (not a 5xx).
        conn.close()
        with socket.create_connection(("127.0.0.1", self.sd.port), timeout=10) as sock:
            sock.sendall(b"G\xe9T /groups HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = sock.recv(4096)
        status = int(head.split(b" ")[1])
        self.assertTrue(400 <= status < 500, head[:200])


if __name__ == "__main__":
    unittest.main()

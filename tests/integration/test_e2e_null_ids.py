"""Ids that spell SQL's NULL ("null", "NULL" are valid ids, SPEC 2) work everywhere: in PostgreSQL
array literals an unquoted null element is NULL, not the string."""
import time
import unittest

import harness
from mqttc import RawV5, Sub


class NullIdsTest(unittest.TestCase):
    def test_group_and_user_named_null(self):
        with harness.Harness("null-ids") as h:
            pg = h.postgres()
            sd = h.syncd()
            tok = {}
            for u in ("null", "alice"):
                st, body, _ = sd.request("POST", "/users", {"id": u}, token=sd.admin_token)
                self.assertEqual(st, 201, body)
                tok[u] = body["token"]
            st, body, _ = sd.request("POST", "/groups", {"id": "NULL", "members": ["null"]}, token=tok["alice"])
            self.assertEqual(st, 201, body)
            st, body, _ = sd.request("POST", "/groups", {"id": "g2", "members": ["null"]}, token=tok["alice"])
            self.assertEqual(st, 201, body)
            m = h.mosquitto().start()
            deadline = time.monotonic() + 2
            while True:  # the broker learns the new group within 1 s
                s = Sub(m.port, "null", tok["null"], ["groups/NULL/messages"])
                if s.suback == [1] or time.monotonic() > deadline:
                    break
                s.close()
                time.sleep(0.05)
            self.assertEqual(s.suback, [1])
            a = RawV5(m.port, "alice", tok["alice"])
            for i in range(3):
                self.assertLess(a.publish("groups/NULL/messages", "n%d" % i, qos=1, user_props=[("cid", "c%d" % i)]),
                                0x80)
            self.assertLess(a.publish("groups/g2/messages", b"in g2", qos=1), 0x80)
            a.close()
            self.assertEqual([x.payload for x in s.take(3, timeout=30)], [b"n0", b"n1", b"n2"])
            s.close()
            self.assertEqual(pg.psql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM messages"
                                     " WHERE group_id = 'NULL'"), "1,2,3")
            # Sync for user "null" returns both groups' messages; ack by group works.
            got, deadline = [], time.monotonic() + 30
            while len(got) < 4 and time.monotonic() < deadline:
                st, page, _ = sd.request("GET", "/messages/sync?limit=100", token=tok["null"])
                self.assertEqual(st, 200, page)
                got = [(x["group"], x["seq"]) for x in page["messages"]]
                time.sleep(0.05)
            self.assertEqual(sorted(got), [("NULL", 1), ("NULL", 2), ("NULL", 3), ("g2", 1)])
            st, body, _ = sd.request("POST", "/messages/ack", {"acks": [{"group": "NULL", "seq": 3}]},
                                     token=tok["null"])
            self.assertEqual(st, 200, body)
            self.assertEqual(body["cursors"][0]["delivered_seq"], 3)
            st, body, _ = sd.request("GET", "/presence?users=null,alice", token=tok["alice"])
            self.assertEqual(st, 200, body)
            self.assertIn("null", [p["user"] for p in body["presence"]])


if __name__ == "__main__":
    unittest.main()

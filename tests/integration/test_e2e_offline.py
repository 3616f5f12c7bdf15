"""End to end with the plugin and mqsyncd: the offline story (SPEC 3, 4, 5), and HTTP changes to
tokens and memberships taking effect on MQTT within 1 s."""
import json
import time
import unittest

import harness
import mqttc
from mqttc import NOT_AUTHORIZED, RawV5, Sub


class OfflineStoryTest(unittest.TestCase):
    def test_offline_story_and_live_changes(self):
        with harness.Harness("e2e-offline") as h:
            pg = h.postgres()
            sd = h.syncd()
            admin = sd.admin_token
            tok = {}
            for u in ("alice", "bob", "carol", "dave"):
                st, body, _ = sd.request("POST", "/users", {"id": u}, token=admin)
                self.assertEqual(st, 201, body)
                tok[u] = body["token"]
            m = h.mosquitto().start()
            st, body, _ = sd.request("POST", "/groups", {"id": "family", "members": ["bob", "carol"]},
                                     token=tok["alice"])
            self.assertEqual(st, 201, body)
            # The broker learns about new users and the group within 1 s.
            def can_subscribe():
                try:
                    c = RawV5(m.port, "bob", tok["bob"])
                except mqttc.ConnectRefused:
                    return False
                rc = c.subscribe("groups/family/messages")
                c.close()
                return rc < 0x80
            self.assertTrue(harness.wait_for(can_subscribe, 1.0))
            bob = Sub(m.port, "bob", tok["bob"], ["groups/family/messages"])
            self.assertEqual(bob.suback, [1])

            # carol is offline; alice sends three messages over MQTT.
            a = RawV5(m.port, "alice", tok["alice"])
            sent = ["first", "second", b"\xff\xfebinary"]
            for p in sent:
                self.assertLess(a.publish("groups/family/messages", p, qos=1), 0x80)
            live = bob.take(3, timeout=30)
            self.assertEqual(len(live), 3)

            # carol's sync returns them in order, with the ids/seqs bob saw live.
            def sync_three():
                st, page, _ = sd.request("GET", "/messages/sync?limit=100", token=tok["carol"])
                return page if st == 200 and len(page["messages"]) == 3 else None
            page = harness.wait_for(sync_three, 30.0)
            self.assertTrue(page)
            msgs = page["messages"]
            self.assertEqual([(x["id"], x["seq"], x["ts"]) for x in msgs],
                             [(int(x.props["id"]), int(x.props["seq"]), x.props["ts"]) for x in live])
            self.assertEqual([x["seq"] for x in msgs], [1, 2, 3])
            self.assertEqual([(x["payload"], x["encoding"]) for x in msgs[:2]], [("first", "utf8"), ("second", "utf8")])
            self.assertEqual(msgs[2]["encoding"], "base64")
            self.assertTrue(all(x["group"] == "family" and x["sender"] == "alice" for x in msgs))
            self.assertFalse(page["has_more"])

            # Status before carol acknowledges: pending for her.
            st, status, _ = sd.request("GET", "/messages/%d/status" % msgs[2]["id"], token=tok["alice"])
            self.assertEqual(st, 200, status)
            rec = {r["user"]: r for r in status["recipients"]}
            self.assertEqual(rec["carol"]["status"], "pending")
            self.assertNotIn("alice", rec, "the sender is not a recipient")

            # Ack; sync is then empty; status shows carol delivered.
            st, body, _ = sd.request("POST", "/messages/ack", {"acks": [{"group": "family", "seq": 3}]},
                                     token=tok["carol"])
            self.assertEqual(st, 200, body)
            self.assertEqual(body["cursors"][0]["delivered_seq"], 3)
            st, page, _ = sd.request("GET", "/messages/sync", token=tok["carol"])
            self.assertEqual((st, page["messages"]), (200, []))
            st, status, _ = sd.request("GET", "/messages/%d/status" % msgs[2]["id"], token=tok["alice"])
            self.assertEqual({r["user"]: r["status"] for r in status["recipients"]}["carol"], "delivered")

            # A read receipt over MQTT shows read, and is broadcast.
            watch = Sub(m.port, "alice", tok["alice"], ["groups/family/receipts"])
            c = RawV5(m.port, "carol", tok["carol"])
            self.assertLess(c.publish("groups/family/receipts", json.dumps({"read": 3}), qos=1), 0x80)
            self.assertEqual(json.loads(watch.get(3).payload), {"user": "carol", "delivered": 3, "read": 3})
            c.close()

            def carol_read():
                st, status, _ = sd.request("GET", "/messages/%d/status" % msgs[2]["id"], token=tok["alice"])
                return {r["user"]: r["status"] for r in status["recipients"]}.get("carol") == "read"
            self.assertTrue(harness.wait_for(carol_read, 30.0))

            # Membership added over HTTP: inbox event and access within 1 s.
            inbox = Sub(m.port, "dave", tok["dave"], ["users/dave/inbox"])
            st, body, _ = sd.request("PUT", "/groups/family/members/dave", token=tok["alice"])
            self.assertEqual(st, 200, body)
            ev = inbox.get(1.0)
            self.assertIsNotNone(ev)
            self.assertEqual(json.loads(ev.payload), {"event": "member_added", "group": "family"})
            d = RawV5(m.port, "dave", tok["dave"])
            self.assertLess(d.publish("groups/family/messages", b"hi from dave", qos=1), 0x80)
            d.close()
            # Removed over HTTP: refused within 1 s.
            st, _, _ = sd.request("DELETE", "/groups/family/members/dave", token=tok["alice"])
            self.assertEqual(st, 204)
            ev = inbox.get(1.0)
            self.assertEqual(json.loads(ev.payload), {"event": "member_removed", "group": "family"})
            d = RawV5(m.port, "dave", tok["dave"])
            self.assertEqual(d.publish("groups/family/messages", b"gone", qos=1), NOT_AUTHORIZED)
            d.close()
            inbox.close()

            # Token rotation over HTTP: the old token's MQTT session is cut and refused within 1 s.
            t0 = time.monotonic()
            st, body, _ = sd.request("POST", "/users/bob/token", token=tok["bob"])
            self.assertEqual(st, 201, body)
            new = body["token"]
            self.assertTrue(bob.disconnected.wait(2))
            self.assertLess(time.monotonic() - t0, 1.0)
            bob.c.loop_stop()
            self.assertEqual(mqttc.connect_rc(m.port, "bob", tok["bob"]), NOT_AUTHORIZED)
            self.assertTrue(harness.wait_for(lambda: mqttc.connect_rc(m.port, "bob", new) == 0, 1.0))
            st, _, _ = sd.request("GET", "/groups", token=tok["bob"])
            self.assertEqual(st, 401)
            a.close()
            watch.close()


if __name__ == "__main__":
    unittest.main()

"""Plugin: persist-first group messaging through the real mosquitto (SPEC 3, 7.3)."""
import json
import os
import signal
import time
import unittest

import harness
from harness import wait_for
import mqttc
from mqttc import NOT_AUTHORIZED, RawV5, Sub


class PluginMessagesTest(unittest.TestCase):
    """Each test gets its own database and broker: no test depends on what another left behind."""

    def setUp(self):
        self.h = harness.Harness("plugin-messages-" + self._testMethodName[5:]).__enter__()
        try:
            self.pg = self.h.postgres()
            self.tok = {u: self.h.user_add(u, admin=(u == "root")) for u in ("alice", "bob", "carol", "dave", "root")}
            self.pg.psql("INSERT INTO groups (id) VALUES ('g1'), ('g2'), ('big');"
                         "INSERT INTO memberships (group_id, user_id) VALUES"
                         " ('g1','alice'), ('g1','bob'), ('g1','carol'), ('g2','dave'), ('g2','alice'),"
                         " ('big','alice'), ('big','bob'), ('big','carol'), ('big','dave')")
            self.m = self.h.mosquitto(options={"max_payload": "1000", "receipts_max_members": "3"}).start()
            self.assertTrue(self.m.wait_log("mqsync: state loaded", 30), self.m.log()[-2000:])
        except BaseException:
            self.h.__exit__(None, None, None)
            raise
        # Runs after every other cleanup (the subscribers close first); a server failure fails the test.
        self.addCleanup(self.close_harness)

    def close_harness(self):
        # outcome.success is reset inside each cleanup; the result already holds this test's failure.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(t is self for t, _ in result.failures + result.errors)
        self.h.__exit__(AssertionError if failed else None, None, None)

    def raw(self, user):
        return RawV5(self.m.port, user, self.tok[user])

    def sub(self, user, topics, **kw):
        s = Sub(self.m.port, user, self.tok[user], topics, **kw)
        self.addCleanup(s.close)
        return s

    def rows(self, sql):
        out = self.pg.psql(sql)
        return [r.split("|") for r in out.splitlines()] if out else []

    def test_publish_stored_once_and_delivered_stamped(self):
        bob = self.sub("bob", ["groups/g1/messages"])
        carol3 = self.sub("carol", ["groups/g1/messages"], proto=4)
        alice_self = self.sub("alice", ["groups/g1/messages"])
        a = self.raw("alice")
        before = int(self.pg.psql("SELECT last_seq FROM groups WHERE id = 'g1'"))
        binary = bytes(range(256)) + b"\x00\xff"
        sent = [(b"hello 0", 0), (b"hello 1", 1), (b"hello 2", 2), (binary, 1)]
        for payload, qos in sent:
            rc = a.publish("groups/g1/messages", payload, qos=qos)
            if qos:
                self.assertLess(rc, 0x80, "accepted with a success code")
        a.close()
        got = bob.take(4, timeout=30)
        self.assertEqual([m.payload for m in got], [p for p, _ in sent])
        seqs = [int(m.props["seq"]) for m in got]
        self.assertEqual(seqs, list(range(before + 1, before + 5)))
        for m in got:
            self.assertEqual(m.props["sender"], "alice")
            self.assertRegex(m.props["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertTrue(m.props["id"].isdigit())
        # Stored exactly once each, with the same id/seq/ts live subscribers saw.
        db = self.rows("SELECT id, seq, sender, qos, " "to_char(created_at AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM messages WHERE group_id = 'g1' AND seq > %d "
                       "ORDER BY seq" % before)
        self.assertEqual([(r[0], r[1], r[4]) for r in db], [(m.props["id"], m.props["seq"], m.props["ts"]) for m in got])
        self.assertEqual([int(r[3]) for r in db], [q for _, q in sent])
        self.assertEqual(bytes.fromhex(self.pg.psql("SELECT encode(payload, 'hex') FROM messages WHERE seq = %d AND "
                                                    "group_id = 'g1'" % (before + 4))), binary)
        # v3.1.1 subscribers get the payload too; the sender's own subscription confirms storage.
        self.assertEqual([m.payload for m in carol3.take(4)], [p for p, _ in sent])
        self.assertEqual(len(alice_self.take(4)), 4)

    def test_cid_resend_stored_and_delivered_once(self):
        bob = self.sub("bob", ["groups/g1/messages"])
        a = self.raw("alice")
        cid = "cid-" + os.urandom(4).hex()
        for _ in range(3):
            self.assertLess(a.publish("groups/g1/messages", b"once", qos=1, user_props=[("cid", cid)]), 0x80)
        a.close()
        got = bob.take(3, timeout=3)
        self.assertEqual(len(got), 1, "delivered once")
        self.assertEqual(got[0].props["cid"], cid)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM messages WHERE cid = '%s'" % cid), "1")
        self.assertTrue(self.m.wait_log("with cid '%s' is a duplicate" % cid))
        a = self.raw("alice")
        self.assertEqual(a.publish("groups/g1/messages", b"x", qos=1, user_props=[("cid", "c" * 65)]), NOT_AUTHORIZED)
        a.close()
        self.assertTrue(self.m.wait_log("cid must be 1 to 64 bytes"))

    def test_refusals(self):
        count = self.pg.psql("SELECT count(*) FROM messages")
        d = self.raw("dave")  # not in g1
        self.assertEqual(d.publish("groups/g1/messages", b"intruder", qos=1), NOT_AUTHORIZED)
        self.assertEqual(d.publish("groups/g1/receipts", b'{"read": 1}', qos=1), NOT_AUTHORIZED)
        self.assertEqual(d.subscribe("groups/g1/messages"), NOT_AUTHORIZED)
        self.assertEqual(d.subscribe("groups/g1/receipts"), NOT_AUTHORIZED)
        self.assertEqual(d.subscribe("users/bob/inbox"), NOT_AUTHORIZED)
        self.assertEqual(d.publish("users/dave/inbox", b"x", qos=1), NOT_AUTHORIZED)
        self.assertEqual(d.publish("groups/g1/other", b"x", qos=1), NOT_AUTHORIZED)
        self.assertEqual(d.publish("system/alerts", b"not admin", qos=1), NOT_AUTHORIZED)
        d.close()
        a = self.raw("alice")
        self.assertEqual(a.publish("groups/g1/messages", b"x" * 1001, qos=1), NOT_AUTHORIZED)
        self.assertEqual(a.publish("groups/nosuch/messages", b"x", qos=1), NOT_AUTHORIZED)
        a.close()
        self.assertTrue(self.m.wait_log("payload larger than max_payload"))
        self.assertTrue(self.m.wait_log("refused publish from 'dave' to 'groups/g1/messages': not a member"))
        self.assertEqual(self.pg.psql("SELECT count(*) FROM messages"), count, "nothing stored")
        # Authentication.
        self.assertEqual(mqttc.connect_rc(self.m.port, "alice", "wrong-token"), NOT_AUTHORIZED)
        self.assertEqual(mqttc.connect_rc(self.m.port, "nobody", self.tok["alice"]), NOT_AUTHORIZED)
        self.assertEqual(mqttc.connect_rc(self.m.port, None, None), NOT_AUTHORIZED)
        self.assertEqual(mqttc.connect_rc(self.m.port, "al+ice", "x"), NOT_AUTHORIZED)
        self.assertEqual(mqttc.connect_rc(self.m.port, "alice", self.tok["alice"], client_id="dev#1"),
                         NOT_AUTHORIZED)
        self.assertEqual(mqttc.connect_rc(self.m.port, "alice", self.tok["alice"], client_id="dev-1"), 0)
        self.assertEqual(mqttc.connect_rc(self.m.port, "alice", self.tok["bob"]), NOT_AUTHORIZED)

    def test_wildcards_only_deliver_own_groups(self):
        dave = self.sub("dave", ["groups/+/messages", "groups/#", "#"])
        self.assertEqual(dave.suback[:2], [1, 1], "wildcard subscriptions are accepted")
        bob = self.sub("bob", ["groups/+/messages"])
        a = self.raw("alice")
        a.publish("groups/g1/messages", b"for g1", qos=1)
        a.publish("groups/g2/messages", b"for g2", qos=1)
        a.close()
        # Three overlapping subscriptions match g2's message: bare mosquitto delivers one copy per
        # matching subscription, so exactly three copies, and nothing of g1 (delivered in commit
        # order, g1's message would arrive before g2's copies).
        got = []
        wait_for(lambda: got.extend(m.payload for m in dave.take(10, timeout=0.2)) or got.count(b"for g2") >= 3)
        got += [m.payload for m in dave.take(10, timeout=0.5)]
        self.assertEqual(sorted(got), [b"for g2"] * 3)
        self.assertEqual([m.payload for m in bob.take(1, timeout=10)], [b"for g1"])
        self.assertTrue(bob.quiet(0.5), "nothing more for bob")

    def test_membership_removal_applies_within_1s(self):
        inbox = self.sub("carol", ["users/carol/inbox"])
        self.pg.psql("INSERT INTO memberships (group_id, user_id) VALUES ('g2', 'carol')")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # the membership is visible to the broker within 1 s
            r = RawV5(self.m.port, "carol", self.tok["carol"])
            rc = r.subscribe("groups/g2/messages")
            r.close()
            if rc < 0x80:
                break
            time.sleep(0.05)
        self.assertLess(rc, 0x80)
        ev = inbox.get(10)
        self.assertEqual(json.loads(ev.payload), {"event": "member_added", "group": "g2"})
        carol_live = self.sub("carol", ["groups/g2/messages"])
        a = self.raw("alice")
        a.publish("groups/g2/messages", b"before removal", qos=1)
        self.assertEqual(carol_live.get(10).payload, b"before removal")
        t0 = time.monotonic()
        self.pg.psql("DELETE FROM memberships WHERE group_id = 'g2' AND user_id = 'carol'")
        ev = inbox.get(10)
        self.assertEqual(json.loads(ev.payload), {"event": "member_removed", "group": "g2"})
        self.assertLess(time.monotonic() - t0, 1.0)
        # Deliveries to the existing subscription stop; new publishes and subscriptions are refused.
        a.publish("groups/g2/messages", b"after removal", qos=1)
        self.assertTrue(carol_live.quiet(1.0))
        c = self.raw("carol")
        self.assertEqual(c.publish("groups/g2/messages", b"x", qos=1), NOT_AUTHORIZED)
        self.assertEqual(c.subscribe("groups/g2/messages"), NOT_AUTHORIZED)
        c.close()
        a.close()

    def test_receipts(self):
        a = self.raw("alice")
        seen = self.sub("carol", ["groups/g1/messages"])
        for i in range(3):
            a.publish("groups/g1/messages", b"r%d" % i, qos=1)
        # PUBACK means spooled: the plugin knows the new last seq once it has committed, i.e. by the
        # time the messages are delivered.
        self.assertEqual(len(seen.take(3, timeout=30)), 3)
        last = int(self.pg.psql("SELECT last_seq FROM groups WHERE id = 'g1'"))
        self.assertEqual(last, 3)
        watcher = self.sub("alice", ["groups/g1/receipts"])
        b = self.raw("bob")
        self.assertLess(b.publish("groups/g1/receipts", json.dumps({"delivered": last - 1}), qos=1), 0x80)
        ev = json.loads(watcher.get(10).payload)
        self.assertEqual(ev, {"user": "bob", "delivered": last - 1, "read": 0})
        self.assertLess(b.publish("groups/g1/receipts", json.dumps({"read": last}), qos=1), 0x80)
        self.assertEqual(json.loads(watcher.get(10).payload), {"user": "bob", "delivered": last, "read": last})
        # Cursors only move forward.
        self.assertLess(b.publish("groups/g1/receipts", json.dumps({"delivered": 1, "read": 1}), qos=1), 0x80)
        self.assertEqual(json.loads(watcher.get(10).payload), {"user": "bob", "delivered": last, "read": last})
        cur = self.pg.psql("SELECT delivered_seq || ',' || read_seq FROM memberships WHERE group_id='g1' AND "
                           "user_id='bob'")
        self.assertEqual(cur, "%d,%d" % (last, last))
        # Malformed or out-of-range receipts: refused, nothing changes, nothing broadcast.
        bad = [b"", b"{", b"[]", b'{"read": -1}', b'{"read": 1.5}', b'{"read": "3"}', b'{"seen": 1}',
               b'{"read": 1, "read": 2}', json.dumps({"delivered": last + 1}).encode(), b"\xff\xfe"]
        for payload in bad:
            self.assertEqual(b.publish("groups/g1/receipts", payload, qos=1), NOT_AUTHORIZED, payload)
        self.assertTrue(watcher.quiet(0.5))
        self.assertTrue(self.m.wait_log("seq beyond the group's last message"))
        self.assertEqual(self.pg.psql("SELECT delivered_seq || ',' || read_seq FROM memberships WHERE group_id='g1' "
                                      "AND user_id='bob'"), cur)
        b.close()
        # Over receipts_max_members (3 here, 'big' has 4): recorded, not broadcast.
        carol_live = self.sub("carol", ["groups/big/messages"])
        a.publish("groups/big/messages", b"big", qos=1)
        self.assertEqual(carol_live.get(10).props["seq"], "1")  # a client learns a seq from the delivery
        big = self.sub("alice", ["groups/big/receipts"])
        c = self.raw("carol")
        self.assertLess(c.publish("groups/big/receipts", b'{"read": 1}', qos=1), 0x80)
        self.assertTrue(big.quiet(1.0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.pg.psql("SELECT read_seq FROM memberships WHERE group_id='big' AND user_id='carol'") == "1":
                break
            time.sleep(0.05)
        self.assertEqual(self.pg.psql("SELECT read_seq FROM memberships WHERE group_id='big' AND user_id='carol'"), "1")
        c.close()
        a.close()

    def test_persistent_session_not_queued_while_away(self):
        """SPEC 3.6: nothing is queued in the broker for a session whose client is away; PostgreSQL has it."""
        phone = Sub(self.m.port, "bob", self.tok["bob"], ["groups/g1/messages"], proto=4, client_id="bob-phone",
                    clean=False)
        phone.close()
        a = self.raw("alice")
        for p in (b"while away 1", b"while away 2"):
            self.assertLess(a.publish("groups/g1/messages", p, qos=1), 0x80)
        # Committed (the plugin hands a message to mosquitto's queues only after its commit).
        self.assertTrue(wait_for(lambda: self.pg.psql("SELECT count(*) FROM messages WHERE group_id = 'g1'") == "2"))
        # SIGHUP re-authenticates every session, the offline one included: it stays offline.
        os.kill(self.m.proc.pid, signal.SIGHUP)
        self.assertTrue(self.m.wait_log("Reloading config", 30), self.m.log()[-2000:])
        back = Sub(self.m.port, "bob", self.tok["bob"], [], proto=4, client_id="bob-phone", clean=False)
        self.addCleanup(back.close)
        self.assertTrue(back.quiet(1.5), "no stale burst from the broker queue")
        # The session kept its subscription: what is committed while connected arrives live.
        self.assertLess(a.publish("groups/g1/messages", b"back again", qos=1), 0x80)
        m = back.get(30)
        self.assertIsNotNone(m)
        self.assertEqual((m.payload, m.props), (b"back again", {}))
        a.close()
        # PostgreSQL holds what the session missed (HTTP sync / MQTT catch-up read it from there).
        self.assertTrue(wait_for(lambda: self.pg.psql("SELECT string_agg(convert_from(payload, 'UTF8'), ',' ORDER BY "
                                                      "seq) FROM messages WHERE group_id = 'g1'")
                                 == "while away 1,while away 2,back again"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.pg.psql("SELECT connections FROM presence WHERE user_id = 'bob'") == "1":
                break
            time.sleep(0.05)
        self.assertEqual(self.pg.psql("SELECT connections FROM presence WHERE user_id = 'bob'"), "1")

    def test_alerts_and_other_topics(self):
        s = self.sub("bob", ["system/alerts", "plain/topic"])
        r = self.raw("root")
        self.assertLess(r.publish("system/alerts", b"maintenance at 10", qos=1), 0x80)
        r.close()
        self.assertEqual(s.get(10).payload, b"maintenance at 10")
        d = self.raw("dave")
        self.assertLess(d.publish("plain/topic", b"ordinary", qos=1), 0x80)  # other_topics allow
        d.close()
        self.assertEqual(s.get(10).payload, b"ordinary")

    def test_presence_and_token_revocation(self):
        tok = self.h.user_add("erin")
        deadline = time.monotonic() + 1.0  # a new user can log in within 1 s
        while mqttc.connect_rc(self.m.port, "erin", tok) != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        s = Sub(self.m.port, "erin", tok, ["users/erin/inbox"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.pg.psql("SELECT coalesce(sum(connections), 0) FROM presence WHERE user_id = 'erin'") == "1":
                break
            time.sleep(0.05)
        self.assertEqual(self.pg.psql("SELECT connections FROM presence WHERE user_id = 'erin'"), "1")
        # Revoking the token disconnects the session within 1 s and refuses new logins.
        t0 = time.monotonic()
        self.pg.psql("DELETE FROM user_tokens WHERE user_id = 'erin'")
        self.assertTrue(s.disconnected.wait(2))
        self.assertLess(time.monotonic() - t0, 1.0)
        s.c.loop_stop()
        self.assertEqual(mqttc.connect_rc(self.m.port, "erin", tok), NOT_AUTHORIZED)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.pg.psql("SELECT connections FROM presence WHERE user_id = 'erin'") == "0":
                break
            time.sleep(0.05)
        self.assertEqual(self.pg.psql("SELECT connections FROM presence WHERE user_id = 'erin'"), "0")


class EnvelopeJsonTest(unittest.TestCase):
    def test_json_envelope_for_v311(self):
        with harness.Harness("plugin-envelope") as h:
            pg = h.postgres()
            ta, tb = h.user_add("alice"), h.user_add("bob")
            pg.psql("INSERT INTO groups (id) VALUES ('g'); INSERT INTO memberships (group_id, user_id)"
                    " VALUES ('g', 'alice'), ('g', 'bob')")
            m = h.mosquitto(options={"envelope": "json"}).start()
            s = Sub(m.port, "bob", tb, ["groups/g/messages"], proto=4)
            a = RawV5(m.port, "alice", ta)
            a.publish("groups/g/messages", "héllo", qos=1, user_props=[("cid", "c1")])
            a.publish("groups/g/messages", b"\xff\x00\x01", qos=1)
            a.close()
            got = [json.loads(x.payload) for x in s.take(2)]
            s.close()
            self.assertEqual(len(got), 2)
            self.assertEqual({k: got[0][k] for k in ("group", "seq", "sender", "payload", "encoding", "cid")},
                             {"group": "g", "seq": 1, "sender": "alice", "payload": "héllo", "encoding": "utf8",
                              "cid": "c1"})
            self.assertIsInstance(got[0]["id"], int)
            self.assertEqual((got[1]["payload"], got[1]["encoding"], got[1]["seq"]), ("/wAB", "base64", 2))
            self.assertNotIn("cid", got[1])


if __name__ == "__main__":
    unittest.main()

"""Plugin: wills on governed topics are never published, and nothing is ever retained under groups/# or
users/# (SPEC 3.1). Wills are sent by the broker after the client is gone; the plugin must refuse them."""
import socket
import struct
import unittest

import harness
from harness import wait_for
from mqttc import RawV5, Sub, _str, _varint

FORGED = [("sender", "bob"), ("id", "1"), ("seq", "1"), ("ts", "2026-01-01T00:00:00.000Z")]


def will_connect(port, user, token, client_id, topic, payload, proto=5, retain=False, qos=1, persistent=False,
                 props=()):
    """Opens a connection with a will (v5 or v3.1.1) and returns its socket, CONNACK read. Closing the socket
    without DISCONNECT makes the broker send the will."""
    flags = 0x80 | 0x40 | 0x04 | (qos << 3) | (0x20 if retain else 0) | (0 if persistent else 0x02)
    var = _str("MQTT") + bytes([proto, flags]) + struct.pack("!H", 60)
    body = _str(client_id)
    if proto == 5:
        var += (b"\x05\x11" + struct.pack("!I", 3600)) if persistent else _varint(0)
        wp = b"".join(b"\x26" + _str(k) + _str(v) for k, v in props)
        body += _varint(len(wp)) + wp
    body += _str(topic) + _str(payload) + _str(user) + _str(token)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(bytes([0x10]) + _varint(len(var + body)) + var + body)
    head = s.recv(2)
    rest = s.recv(head[1])
    if head[0] >> 4 != 2:
        raise RuntimeError("expected CONNACK")
    code = rest[1]
    if code != 0:
        raise RuntimeError("CONNACK %d" % code)
    return s


def drop(s):
    """Ends a connection the way a lost device does: no DISCONNECT, so its will fires."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class PluginWillsTest(harness.SharedServersTest):
    @classmethod
    def setUpClass(cls):
        cls.h = harness.Harness("plugin-wills").__enter__()
        try:
            cls.pg = cls.h.postgres()
            cls.tok = {u: cls.h.user_add(u, admin=(u == "root")) for u in ("alice", "bob", "carol", "root")}
            cls.pg.psql("INSERT INTO groups (id) VALUES ('g1');"
                        "INSERT INTO memberships (group_id, user_id) VALUES ('g1','alice'), ('g1','bob'),"
                        " ('g1','carol'), ('g1','root')")
            # Every refused will is counted by its log line: no throttling here.
            cls.m = cls.h.mosquitto(options={"refusal_log_burst": "0"}).start()
            assert cls.m.wait_log("mqsync: state loaded", 30), cls.m.log()[-2000:]
        except BaseException:
            cls.h.__exit__(None, None, None)
            raise
        cls.addClassCleanup(cls.close_shared)

    def refusals(self):
        return self.m.log().count("wills on governed topics are never published")

    def sub(self, user, topics, **kw):
        s = Sub(self.m.port, user, self.tok[user], topics, **kw)
        self.addCleanup(s.close)
        return s

    def assert_nothing_came(self, watchers, refusals_before, expected):
        self.assertTrue(wait_for(lambda: self.refusals() >= refusals_before + expected, 30), self.m.log()[-3000:])
        for w in watchers:
            self.assertTrue(w.quiet(1.0), "a will reached a live member")
        self.assertEqual(self.pg.psql("SELECT count(*) FROM messages"), "0")
        # Nothing retained: a later subscriber (here one that may read every topic) gets nothing.
        late = self.sub("bob", ["groups/g1/messages", "groups/g1/receipts", "users/bob/inbox", "system/alerts"],
                        proto=4)
        self.assertTrue(late.quiet(1.0), "a will was retained")

    WILL_TOPICS = [("groups/g1/messages", b"forged"), ("groups/g1/receipts", b'{"read": 1}'),
                   ("users/bob/inbox", b'{"event": "member_removed", "group": "g1"}'),
                   ("system/alerts", b"fake alert")]

    def run_wills(self, proto, persistent):
        bob = self.sub("bob", ["groups/g1/messages", "groups/g1/receipts", "users/bob/inbox", "system/alerts"])
        bob3 = self.sub("bob", ["groups/g1/messages", "groups/g1/receipts", "system/alerts"], proto=4)
        before = self.refusals()
        n = 0
        for retain in (False, True):
            for topic, payload in self.WILL_TOPICS:
                cid = "will-%d-%d-%d-%s" % (proto, persistent, retain, topic.replace("/", "_"))
                s = will_connect(self.m.port, "alice", self.tok["alice"], cid, topic, payload, proto=proto,
                                 retain=retain, persistent=persistent, props=FORGED)
                drop(s)
                n += 1
        self.assert_nothing_came([bob, bob3], before, n)
        line = "client 'will-%d-%d-1-groups_g1_messages': refused will of 'alice' on 'groups/g1/messages' " \
               "(retained)" % (proto, persistent)
        self.assertIn(line, self.m.log())

    def test_v5_clean(self):
        self.run_wills(5, False)

    def test_v5_persistent(self):
        self.run_wills(5, True)

    def test_v311_clean(self):
        self.run_wills(4, False)

    def test_v311_persistent(self):
        self.run_wills(4, True)

    def test_admin_alert_will_refused_but_retained_alert_allowed(self):
        bob = self.sub("bob", ["system/alerts"])
        before = self.refusals()
        drop(will_connect(self.m.port, "root", self.tok["root"], "root-will", "system/alerts", b"root will",
                          retain=True))
        self.assertTrue(wait_for(lambda: self.refusals() == before + 1, 30))
        self.assertTrue(bob.quiet(1.0))
        # An admin's live retained alert is kept (SPEC 3.1) and reaches a later subscriber.
        r = RawV5(self.m.port, "root", self.tok["root"])
        self.assertLess(r.publish("system/alerts", b"retained alert", qos=1, retain=True), 0x80)
        self.assertEqual(bob.get(10).payload, b"retained alert")
        late = self.sub("carol", ["system/alerts"])
        self.assertEqual(late.get(10).payload, b"retained alert")
        self.assertLess(r.publish("system/alerts", b"", qos=1, retain=True), 0x80)  # clears it
        r.close()

    def test_takeover_will_of_a_live_connection(self):
        """A new connection with the same client id takes over a live one: the broker sends the old one's will
        after the new one has logged in and before the old one's DISCONNECT."""
        bob = self.sub("bob", ["groups/g1/messages", "groups/g1/receipts"])
        before = self.refusals()
        old = will_connect(self.m.port, "alice", self.tok["alice"], "alice-phone", "groups/g1/messages", b"forged",
                           retain=True, props=FORGED)
        new = RawV5(self.m.port, "alice", self.tok["alice"], client_id="alice-phone")
        self.assertTrue(wait_for(lambda: self.refusals() == before + 1, 30), self.m.log()[-3000:])
        self.assertTrue(bob.quiet(1.0))
        # The new connection publishes normally: stored, stamped, delivered.
        self.assertLess(new.publish("groups/g1/messages", b"real", qos=1, retain=True), 0x80)
        m = bob.get(10)
        self.assertEqual((m.payload, m.props["sender"]), (b"real", "alice"))
        new.close()
        old.close()
        self.assertTrue(wait_for(lambda: self.pg.psql("SELECT count(*) FROM messages") == "1"))
        self.pg.psql("DELETE FROM messages")
        # Retain on a live group publish is ignored too: a later subscriber gets nothing.
        late = self.sub("carol", ["groups/g1/messages"])
        self.assertTrue(late.quiet(1.0))

    def test_will_of_non_member_and_non_user(self):
        before = self.refusals()
        drop(will_connect(self.m.port, "alice", self.tok["alice"], "alice-x", "groups/nope/messages", b"x",
                          retain=True))
        drop(will_connect(self.m.port, "alice", self.tok["alice"], "alice-y", "users/alice/sync", b"{}"))
        self.assertTrue(wait_for(lambda: self.refusals() == before + 2, 30), self.m.log()[-3000:])


if __name__ == "__main__":
    unittest.main()

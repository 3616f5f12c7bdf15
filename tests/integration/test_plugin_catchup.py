"""Plugin: catch-up over MQTT (SPEC 3.6): pages of a backlog on users/{uid}/sync, mixed with HTTP
GET /messages/sync, refusals, the JSON envelope, and live delivery to others while a catch-up runs.
The Python client is docs/examples/catchup_paho.py, so the documented example is run here too."""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import wait_for
from mqttc import NOT_AUTHORIZED, RawV5, Sub

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "examples")
sys.path.insert(0, EXAMPLES)
import catchup_paho  # noqa: E402

NA, NB = 2500, 300  # backlog of ga and gb


class CatchupTest(harness.SharedServersTest):
    @classmethod
    def setUpClass(cls):
        cls.h = harness.Harness("plugin-catchup").__enter__()
        try:
            cls.pg = cls.h.postgres()
            users = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")
            cls.tok = {u: cls.h.user_add(u) for u in users}
            # ga: alice bob dave erin; gb: alice dave erin; gc: bob; gl: live traffic (bob, carol).
            cls.pg.psql(
                "INSERT INTO groups (id) VALUES ('ga'), ('gb'), ('gc'), ('gl'), ('gd');"
                "INSERT INTO memberships (group_id, user_id) VALUES ('ga','alice'), ('ga','bob'), ('ga','dave'),"
                " ('ga','erin'), ('ga','gina'), ('gb','alice'), ('gb','dave'), ('gb','erin'), ('gb','gina'), ('gc','bob'), ('gl','bob'),"
                " ('gl','carol'), ('gd','frank');"
                "INSERT INTO messages (group_id, seq, sender, payload, cid)"
                " SELECT 'ga', s, 'bob', convert_to('a' || s || repeat('x', s %% 50), 'UTF8'),"
                "        CASE WHEN s %% 7 = 0 THEN 'c' || s END FROM generate_series(1, %d) s;"
                "INSERT INTO messages (group_id, seq, sender, payload)"
                " SELECT 'gb', s, 'dave', '\\x00ff'::bytea || int4send(s) FROM generate_series(1, %d) s;"
                "UPDATE groups SET last_seq = %d WHERE id = 'ga'; UPDATE groups SET last_seq = %d WHERE id = 'gb'"
                % (NA, NB, NA, NB))
            cls.m = cls.h.mosquitto().start()
            assert cls.m.wait_log("mqsync: state loaded", 30), cls.m.log()[-2000:]
            cls.sd = cls.h.syncd()
        except BaseException:
            cls.h.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.close_shared()

    def client(self, user, **kw):
        c = catchup_paho.CatchUp("127.0.0.1", self.m.port, user, self.tok[user], **kw)
        self.addCleanup(c.close)
        return c

    def all_pages(self, c, limit=1000, after=None, group=None):
        """Every page until has_more is false: (messages, events)."""
        msgs, evs = [], []
        while True:
            ms, ev = c.page(after=after, limit=limit, group=group)
            msgs += ms
            evs.append(ev)
            self.assertEqual(ev["count"], len(ms), ev)
            after = ev["next"]
            if not ev["has_more"]:
                return msgs, evs

    def assert_backlog(self, msgs, groups):
        """Every seq of each group once, in ascending order, each page grouped by group."""
        for gid, n in groups.items():
            self.assertEqual([m["seq"] for m in msgs if m["group"] == gid], list(range(1, n + 1)), gid)
        self.assertEqual(len(msgs), sum(groups.values()))
        self.assertTrue(all(m["replay"] for m in msgs), "every replayed message has replay=1")

    def test_pages_every_seq_once_in_order(self):
        c = self.client("alice")
        msgs, evs = self.all_pages(c)
        self.assertEqual([e["count"] for e in evs], [1000, 1000, 800])
        self.assertEqual([e["has_more"] for e in evs], [True, True, False])
        self.assert_backlog(msgs, {"ga": NA, "gb": NB})
        # Within a page: ga (C collation first) before gb, exactly as GET /messages/sync.
        first_gb = next(i for i, m in enumerate(msgs) if m["group"] == "gb")
        self.assertEqual(first_gb, NA)
        # Stamped exactly as live delivery: id/sender/ts/payload as stored.
        row = self.pg.psql("SELECT id, sender, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                           " encode(payload, 'hex') FROM messages WHERE group_id = 'gb' AND seq = 7").split("|")
        m = [x for x in msgs if x["group"] == "gb" and x["seq"] == 7][0]
        self.assertEqual((str(m["id"]), m["sender"], m["ts"], m["payload"].hex()), tuple(row))
        # An empty page at the end; the token stays valid.
        ms, ev = c.page(after=evs[-1]["next"])
        self.assertEqual((ms, ev["count"], ev["has_more"]), ([], 0, False))
        # limit and group as in HTTP; default limit 100.
        ms, ev = c.page(group="gb", limit=50)
        self.assertEqual([x["seq"] for x in ms], list(range(1, 51)))
        ms, ev = c.page(group="gb", after=ev["next"], limit=1000)
        self.assertEqual([x["seq"] for x in ms], list(range(51, NB + 1)))

    def test_default_limit_and_receipts_move_the_start(self):
        c = self.client("erin")
        c.c.publish("users/erin/sync", json.dumps({"id": "d"}), qos=1)
        ms, ev = [], None
        while ev is None:
            m = c.q.get(timeout=20)
            if m.topic == "users/erin/inbox":
                ev = json.loads(m.payload)
            else:
                ms.append(m)
        self.assertEqual((len(ms), ev["count"], ev["has_more"], ev["id"]), (100, 100, True, "d"))
        # The example acknowledges with receipts at the end: a sync without a token then starts there.
        nxt, highest = c.catch_up(limit=1000, ack=True)
        self.assertEqual(highest, {"ga": NA, "gb": NB})
        wait_for(lambda: self.pg.psql("SELECT delivered_seq FROM memberships WHERE user_id = 'erin' AND "
                                      "group_id = 'gb'") == str(NB), 10)
        ms, ev = c.page()
        self.assertEqual((ms, ev["has_more"]), ([], False))

    def test_mixed_with_http(self):
        c = self.client("dave")
        ms1, ev1 = c.page(limit=700)  # MQTT page ...
        st, page, _ = self.sd.request("GET", "/messages/sync?limit=1000&after=" + ev1["next"], token=self.tok["dave"])
        self.assertEqual(st, 200, page)  # ... then HTTP with its next ...
        ms2 = [{"group": x["group"], "seq": x["seq"], "replay": True} for x in page["messages"]]
        self.assertTrue(page["has_more"])
        ms3, evs = self.all_pages(c, after=page["next"])  # ... then MQTT with HTTP's next.
        self.assert_backlog(ms1 + ms2 + ms3, {"ga": NA, "gb": NB})
        # And HTTP's next after the last MQTT page: nothing left.
        st, page, _ = self.sd.request("GET", "/messages/sync?after=" + evs[-1]["next"], token=self.tok["dave"])
        self.assertEqual((st, page["messages"], page["has_more"]), (200, [], False))

    def test_documented_examples_run(self):
        """docs/examples: the C client (libmosquitto) catches gina up and acknowledges; the Python
        client, run as the script the guide shows, then finds nothing after the C client's next."""
        exe = os.path.join(self.h.tmp, "catchup_c")
        src = os.path.join(EXAMPLES, "catchup_mosquitto.c")
        r = subprocess.run(["cc", "-Wall", "-Werror", "-o", exe, src, "-lmosquitto", "-ljansson"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([exe, "127.0.0.1", str(self.m.port), "gina", self.tok["gina"]], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), NA + NB + 1)
        self.assertEqual(lines[0].split()[:2], ["ga", "1"])
        self.assertEqual(lines[NA].split()[:2], ["gb", "1"])
        self.assertTrue(lines[-1].startswith("next "))
        nxt = lines[-1].split()[1]
        wait_for(lambda: self.pg.psql("SELECT min(delivered_seq) FROM memberships WHERE user_id = 'gina'") == str(NB),
                 10)
        r = subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, "catchup_paho.py"), "127.0.0.1",
                            str(self.m.port), "gina", self.tok["gina"], "--after", nxt], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), ["next " + nxt])
        st, page, _ = self.sd.request("GET", "/messages/sync", token=self.tok["gina"])
        self.assertEqual((st, page["messages"]), (200, []), "the receipts moved gina's delivered cursors")

    def read_all(self, raw, seconds):
        """PUBLISH packets (topic, payload) that reach a RawV5 connection within seconds."""
        out = [raw.received.pop(0) for _ in list(raw.received)]  # arrived during a publish (QoS 1 here)
        raw.sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                header, body = raw._read()
            except OSError:
                continue
            if header >> 4 == 3:
                out.append(body)
                if header & 0x06:  # acknowledge, or the broker stops at max_inflight_messages
                    tl = int.from_bytes(body[:2], "big")
                    raw._send(0x40, body[2 + tl:4 + tl])
        raw.sock.settimeout(10)
        return [(body[2:2 + int.from_bytes(body[:2], "big")].decode(), body) for body in out]

    def test_refusals_send_nothing(self):
        # frank (gd only) stands for "a group the user left": alice was never in gd; bob leaves ga below.
        before = self.m.log()
        a = RawV5(self.m.port, "alice", self.tok["alice"], client_id="alice-refused")
        b = RawV5(self.m.port, "bob", self.tok["bob"], client_id="bob-watch")
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertEqual(b.subscribe("users/bob/inbox"), 0x01)
        self.assertEqual(b.subscribe("users/bob/sync"), NOT_AUTHORIZED, "nobody subscribes to sync topics")
        self.pg.psql("DELETE FROM memberships WHERE group_id = 'ga' AND user_id = 'bob'")
        time.sleep(1.2)  # SPEC 3: membership changes take effect within 1 s
        self.assertIn("member_removed", self.read_all(b, 0.3)[0][1].decode())
        cases = [
            ("users/bob/sync", b"{}", "another user's sync topic"),
            ("users/alice/sync", b"{", "not a JSON object"),
            ("users/alice/sync", b"[1]", "not a JSON object"),
            ("users/alice/sync", b'{"limit": 0}', "limit: expected an integer"),
            ("users/alice/sync", b'{"limit": 1001}', "limit: expected an integer"),
            ("users/alice/sync", b'{"wait": 5}', "unknown key"),
            ("users/alice/sync", b'{"after": "AAAAnot-a-token"}', "after: not a token"),
            ("users/alice/sync", b'{"group": "gd"}', "not a member of the group"),
            ("users/alice/sync", b'{"group": "nosuch"}', "no such group"),
            ("users/alice/sync", b'{"group": "bad/id"}', "group: must match"),
        ]
        for topic, payload, why in cases:
            self.assertEqual(a.publish(topic, payload, qos=1), NOT_AUTHORIZED, (topic, payload))
            self.assertTrue(self.m.wait_log(why), why)
        self.assertEqual(b.publish("users/bob/sync", b'{"group": "ga"}', qos=1), NOT_AUTHORIZED, "bob left ga")
        self.assertTrue(wait_for(lambda: self.m.log().count("refused catch-up request from 'bob'") >
                                 before.count("refused catch-up request from 'bob'"), 5))
        self.assertEqual(self.read_all(a, 1.5), [], "alice got nothing")
        self.assertEqual(self.read_all(b, 0.5), [], "bob got nothing")
        # bob's catch-up now leaves ga out (he left it): only gc (empty) and gl (live traffic of
        # another test, if it ran first).
        self.assertLess(b.publish("users/bob/sync", b'{"id": "after-leave", "limit": 1000}', qos=1), 0x80)
        got = self.read_all(b, 2)
        self.assertEqual(set(t for t, _ in got[:-1]) - {"groups/gl/messages"}, set())
        self.assertEqual(got[-1][0], "users/bob/inbox")
        self.assertIn(b'"id":"after-leave","count":%d,' % (len(got) - 1), got[-1][1])

    def test_disconnect_mid_page_drops_it(self):
        a = RawV5(self.m.port, "alice", self.tok["alice"], client_id="alice-gone")
        a.publish("users/alice/sync", b'{"limit": 1000}', qos=0)
        a.close()
        # Same client id again: the page of the connection that went away must not arrive here.
        a2 = RawV5(self.m.port, "alice", self.tok["alice"], client_id="alice-gone")
        self.addCleanup(a2.close)
        self.assertEqual(self.read_all(a2, 1.5), [])
        # The new connection has no page in flight: its request is served.
        self.assertLess(a2.publish("users/alice/sync", b'{"limit": 1, "id": "x"}', qos=1), 0x80)
        got = self.read_all(a2, 2)
        self.assertEqual([t for t, _ in got], ["groups/ga/messages", "users/alice/inbox"])

    def test_envelope_json(self):
        m2 = self.h.mosquitto(name="mq-json", options={"envelope": "json"}).start()
        self.assertTrue(m2.wait_log("mqsync: state loaded", 30))
        s = Sub(m2.port, "alice", self.tok["alice"], ["users/alice/inbox"], proto=4, client_id="alice-v311")
        self.addCleanup(s.close)
        s.c.publish("users/alice/sync", json.dumps({"group": "gb", "limit": 3, "id": "env"}), qos=1)
        got = s.take(4, timeout=20)
        self.assertEqual([g.topic for g in got], ["groups/gb/messages"] * 3 + ["users/alice/inbox"])
        objs = [json.loads(g.payload) for g in got[:3]]
        self.assertEqual([o["seq"] for o in objs], [1, 2, 3])
        self.assertTrue(all(o["replay"] is True and o["group"] == "gb" and o["encoding"] == "base64" for o in objs))
        ev = json.loads(got[3].payload)
        self.assertEqual((ev["event"], ev["id"], ev["count"], ev["has_more"]), ("sync", "env", 3, True))
        # Live delivery in envelope mode has no "replay" key.
        live = Sub(m2.port, "carol", self.tok["carol"], ["groups/gl/messages"], proto=4)
        self.addCleanup(live.close)
        bob = RawV5(m2.port, "bob", self.tok["bob"])
        bob.publish("groups/gl/messages", b"live", qos=1)
        bob.close()
        o = json.loads(live.get(20).payload)
        self.assertNotIn("replay", o)

    def test_live_delivery_not_delayed(self):
        """carol publishes to gl at ~200/s while alice pages through the whole backlog over and over;
        bob's live latency is logged and bounded generously."""
        bob = Sub(self.m.port, "bob", self.tok["bob"], ["groups/gl/messages"])
        self.addCleanup(bob.close)
        carol = RawV5(self.m.port, "carol", self.tok["carol"])
        self.addCleanup(carol.close)
        stop = threading.Event()
        pages = [0]

        def churn():
            c = catchup_paho.CatchUp("127.0.0.1", self.m.port, "alice", self.tok["alice"])
            try:
                while not stop.is_set():
                    c.catch_up(limit=1000, ack=False)
                    pages[0] += 3
            finally:
                c.close()
        t = threading.Thread(target=churn)
        t.start()
        lat = []
        try:
            time.sleep(0.3)
            for i in range(400):
                sent = time.monotonic()
                carol.publish("groups/gl/messages", ("%d" % i).encode(), qos=1)
                m = bob.get(10)
                self.assertIsNotNone(m, "live message %d" % i)
                lat.append((time.monotonic() - sent) * 1000)
                time.sleep(0.005)
        finally:
            stop.set()
            t.join(60)
        lat.sort()
        p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
        sys.stderr.write("live publish->delivery during catch-up (%d pages): p50 %.1f ms, p99 %.1f ms\n"
                         % (pages[0], p50, p99))
        self.assertGreater(pages[0], 0)
        self.assertLess(p99, 1000, "live delivery p99 during catch-up")


if __name__ == "__main__":
    unittest.main(verbosity=2)

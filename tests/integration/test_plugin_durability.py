"""Plugin guarantees under failure (SPEC 7): kill -9 of the broker, PostgreSQL outages, spool limit,
two brokers on one database."""
import os
import re
import threading
import time
import unittest

import harness
from harness import wait_for
from mqttc import NOT_AUTHORIZED, RawV5, Sub


def setup_group(h, users=("alice", "bob"), group="g"):
    pg = h.postgres()
    tok = {u: h.user_add(u) for u in users}
    pg.psql("INSERT INTO groups (id) VALUES ('%s');" % group +
            "".join("INSERT INTO memberships (group_id, user_id) VALUES ('%s', '%s');" % (group, u) for u in users))
    return pg, tok


class Publisher(threading.Thread):
    """Publishes QoS 1 messages "<prefix>-<i>" until stopped or the connection dies; records which
    ones were acknowledged with a success code and which were refused."""

    def __init__(self, port, user, token, topic, prefix, count=10 ** 9, pause=0.0):
        super().__init__(daemon=True)
        self.port, self.user, self.token, self.topic = port, user, token, topic
        self.prefix, self.count, self.pause = prefix, count, pause
        self.acked, self.refused = [], []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            c = RawV5(self.port, self.user, self.token)
            for i in range(self.count):
                if self.stop.is_set():
                    break
                payload = "%s-%d" % (self.prefix, i)
                rc = c.publish(self.topic, payload, qos=1)
                (self.acked if rc < 0x80 else self.refused).append(payload)
                if self.pause:
                    time.sleep(self.pause)
            c.close()
        except (OSError, ConnectionError) as e:
            self.error = e


def stored_payloads(pg, group="g"):
    out = pg.psql("SELECT convert_from(payload, 'UTF8') FROM messages WHERE group_id = '%s' ORDER BY seq" % group)
    return out.splitlines() if out else []


def expected_failure(reason, check):
    """A known defect: check() must fail (AssertionError) until it is fixed; it is then reported and
    passes. When check() passes the defect is gone: fail, so that the mark is removed."""
    try:
        check()
    except AssertionError as e:
        print("expected failure (%s): %s" % (reason, str(e).splitlines()[0][:200]))
        return
    raise AssertionError("unexpected success: %s is fixed; make this an ordinary assertion" % reason)

def spool_bytes(m):
    return sum(os.path.getsize(os.path.join(m.spool, f)) for f in os.listdir(m.spool))


def outage(test, h, backlog=300):
    """Publishes QoS 1 at a few hundred msg/s to a group with a live subscriber, stops PostgreSQL
    until `backlog` publishes were acknowledged from the spool alone, starts it again, stops
    publishing once it is back. Mosquitto's default queue settings. Returns (pg, publisher, live
    subscriber, broker)."""
    pg, tok = setup_group(h)
    m = h.mosquitto(options={"reconnect_max_ms": "500"}).start()
    live = Sub(m.port, "bob", tok["bob"], ["groups/g/messages"])
    pub = Publisher(m.port, "alice", tok["alice"], "groups/g/messages", "load", pause=0.002)
    pub.start()
    test.assertTrue(wait_for(lambda: len(pub.acked) >= 100), "publishing before the outage")
    pg.stop()
    down_at = len(pub.acked)
    # The broker keeps serving: group publishes are acknowledged (spooled) and ordinary traffic flows.
    other = Sub(m.port, "bob", tok["bob"], ["plain/ping"])
    c = RawV5(m.port, "bob", tok["bob"])
    t0 = time.monotonic()
    c.publish("plain/ping", b"ping", qos=1)
    got = other.get(10)
    test.assertEqual(got.payload if got else None, b"ping")
    ping = time.monotonic() - t0
    test.assertLess(ping, 2.0, "ordinary traffic is not held up by the outage")
    c.close()
    other.close()
    test.assertTrue(wait_for(lambda: len(pub.acked) > down_at + backlog, timeout=120),
                    "acknowledged while the database is down")
    test.assertEqual(pub.refused, [])
    pg.start()
    test.assertTrue(m.wait_log("database reachable again", 60), m.log()[-3000:])
    back_at = len(pub.acked)
    test.assertTrue(wait_for(lambda: len(pub.acked) > back_at + 100), "publishing after the outage")
    pub.stop.set()
    pub.join(30)
    test.assertIsNone(pub.error)
    return pg, pub, live, m


class DurabilityTest(unittest.TestCase):
    def assert_gapless_once(self, pg, group="g"):
        rows = pg.psql("SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), count(DISTINCT payload),"
                       " (SELECT last_seq FROM groups WHERE id = '%s') FROM messages WHERE group_id = '%s'"
                       % (group, group)).split("|")
        n, lo, hi, distinct, last = map(int, rows)
        self.assertEqual((lo, hi, last), (1 if n else 0, n, n), "seq is 1..N without gaps")
        self.assertEqual(distinct, n, "every message stored once")
        return n

    def test_kill9_mid_stream_loses_nothing_acknowledged(self):
        with harness.Harness("kill9") as h:
            pg, tok = setup_group(h)
            m = h.mosquitto().start()
            # Phase 1 with the database up, phase 2 with it down (acknowledged from the spool only),
            # then kill -9 in the middle of the stream.
            p1 = Publisher(m.port, "alice", tok["alice"], "groups/g/messages", "up", count=300)
            p1.start()
            p1.join(60)
            self.assertEqual(len(p1.acked), 300)
            pg.stop()
            p2 = Publisher(m.port, "alice", tok["alice"], "groups/g/messages", "down")
            p2.start()
            self.assertTrue(wait_for(lambda: len(p2.acked) >= 300, timeout=60))
            m.proc.kill9()
            p2.join(10)
            acked = p1.acked + p2.acked
            # Nothing of phase 2 can be in PostgreSQL (it was down): the restart must replay at least
            # those records from the spool (phase 1's may be replayed too; they are then dropped as
            # already stored). A spool that lost them fails here, not just in the final comparison.
            pg.start()
            m.start()  # replays the spool
            self.assertTrue(m.wait_log("replaying", 30), m.log())
            replayed = re.search(r"replaying (\d+) spooled messages", m.log())
            self.assertTrue(replayed, m.log()[-3000:])
            self.assertGreaterEqual(int(replayed.group(1)), len(p2.acked), "every unstored ack was spooled")
            stored = wait_for(lambda: (lambda s: s if set(acked) <= set(s) else None)(stored_payloads(pg)))
            self.assertTrue(stored, "every acknowledged message is stored after the restart")
            self.assertEqual(len(stored), len(set(stored)), "each exactly once")
            self.assert_gapless_once(pg)
            # A second restart replays nothing new and duplicates nothing: a marker published after it
            # is committed after anything the replay would have re-committed (one writer, spool order).
            m.proc.stop()
            m.start()
            # Drained: committed segments are deleted; only the current, empty one remains.
            self.assertTrue(wait_for(lambda: spool_bytes(m) == 0, timeout=30), "spool drained")
            c = RawV5(m.port, "alice", tok["alice"])
            self.assertTrue(wait_for(lambda: c.publish("groups/g/messages", b"marker", qos=1) < 0x80, timeout=30))
            c.close()
            self.assertTrue(wait_for(lambda: "marker" in stored_payloads(pg)), "the marker is stored")
            self.assertEqual(stored_payloads(pg), stored + ["marker"])

    def test_database_outage_under_load(self):
        with harness.Harness("outage") as h:
            pg, pub, live, m = outage(self, h)
            stored = wait_for(lambda: (lambda s: s if len(s) >= len(pub.acked) else None)(stored_payloads(pg)))
            self.assertEqual(stored, pub.acked, "all stored, once, in publish order")
            self.assert_gapless_once(pg)
            # Live: whatever arrives arrives once, in publish order (what is lost live is the next test's).
            got = [x.payload.decode() for x in live.take(len(pub.acked), timeout=30)]
            live.close()
            self.assertEqual(len(got), len(set(got)), "no live duplicates")
            it = iter(pub.acked)
            self.assertTrue(all(x in it for x in got), "live deliveries in publish order")

    def test_database_outage_loses_nothing_live(self):
        # Bare Mosquitto with the same publisher and subscriber delivers all of it: the subscriber
        # keeps up with ~500 msg/s. With the plugin, the backlog committed after the outage is
        # released in one burst and mosquitto drops what exceeds max_queued_messages (1000).
        with harness.Harness("outage-live") as h:
            pg, pub, live, m = outage(self, h, backlog=2000)
            got = [x.payload.decode() for x in live.take(len(pub.acked), timeout=30)]
            live.close()
            print("outage: %d acknowledged, %d delivered live" % (len(pub.acked), len(got)))
        # Checked after the harness closed cleanly, so a crash or a sanitizer report still fails
        # this test (unittest.expectedFailure would have swallowed them with the known failure).
        expected_failure("issue 8: committed batches are released in bursts larger than the subscriber's queue",
                         lambda: self.assertEqual(got, pub.acked, "delivered live after the outage"))

    def test_spool_limit_refuses_and_keeps_accepted(self):
        with harness.Harness("spoolfull") as h:
            pg, tok = setup_group(h)
            m = h.mosquitto(options={"spool_max_bytes": "8192", "reconnect_max_ms": "200"}).start()
            pg.stop()
            pub = Publisher(m.port, "alice", tok["alice"], "groups/g/messages", "x" * 100, count=200)
            pub.start()
            pub.join(60)
            self.assertIsNone(pub.error)
            self.assertGreater(len(pub.acked), 10)
            self.assertLess(len(pub.acked), 200)
            self.assertTrue(pub.refused, "refused once the spool is full (reason 0x87)")
            self.assertTrue(m.wait_log("spool full", 30))
            pg.start()
            stored = wait_for(lambda: (lambda s: s if len(s) >= len(pub.acked) else None)(stored_payloads(pg)))
            self.assertEqual(stored, pub.acked, "every accepted message stored; no refused one")
            # Drained: accepted again.
            c = RawV5(m.port, "alice", tok["alice"])
            self.assertTrue(wait_for(lambda: c.publish("groups/g/messages", b"after", qos=1) < 0x80, timeout=30))
            c.close()

    def test_two_brokers_one_database(self):
        with harness.Harness("twobrokers") as h:
            pg, tok = setup_group(h)
            a = h.mosquitto(name="broker-a").start()
            b = h.mosquitto(name="broker-b").start()
            live_b = Sub(b.port, "bob", tok["bob"], ["groups/g/messages"])
            pubs = [Publisher(a.port, "alice", tok["alice"], "groups/g/messages", "a", count=400),
                    Publisher(b.port, "alice", tok["alice"], "groups/g/messages", "b", count=400)]
            for p in pubs:
                p.start()
            for p in pubs:
                p.join(120)
                self.assertEqual(len(p.acked), 400)
            stored = wait_for(lambda: (lambda s: s if len(s) >= 800 else None)(stored_payloads(pg)))
            self.assertEqual(sorted(stored), sorted(pubs[0].acked + pubs[1].acked))
            self.assertEqual(self.assert_gapless_once(pg), 800)
            # Each broker's messages keep their own order within the group.
            for p in pubs:
                self.assertEqual([s for s in stored if s.startswith(p.prefix + "-")], p.acked)
            # Messages published on broker A reach bob on broker B live (SPEC 8).
            got = live_b.take(800, timeout=60)
            live_b.close()
            self.assertEqual(sorted(x.payload.decode() for x in got), sorted(stored))
            self.assertEqual(sorted(int(x.props["seq"]) for x in got), list(range(1, 801)))


if __name__ == "__main__":
    unittest.main()

"""Persist-first (SPEC 7.3), checked at the moment of delivery: a live subscriber receives nothing
while PostgreSQL is down, and every seq it receives is already visible, both in PostgreSQL and
through mqsyncd's GET /messages/sync, when the message arrives."""
import threading
import time
import unittest

import harness
from harness import wait_for
from mqttc import Msg, RawV5, Sub


class CheckingSub:
    """A live subscriber that, inside the message callback (before the next message is read),
    looks the seq up in PostgreSQL and through mqsyncd's sync as a member who never acks."""

    def __init__(self, h, m, sd, user, token, reader_token):
        self.h, self.sd, self.reader_token = h, sd, reader_token
        self.pg_conn = None
        self.got, self.unseen, self.lock = [], [], threading.Lock()
        self.sub = Sub(m.port, user, token, ["groups/g/messages"])
        self.sub.c.on_message = self.on_message

    def in_postgres(self, seq):
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.pg_conn is None:
                    self.pg_conn = self.h.pg.connect()
                cur = self.pg_conn.cursor()
                cur.execute("SELECT count(*) FROM messages WHERE group_id = 'g' AND seq = %s", (seq,))
                return cur.fetchone()[0] == 1
            except Exception:  # the connection did not survive the restart: reconnect
                self.pg_conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def in_sync(self, seq):
        deadline = time.monotonic() + 30
        while True:
            st, page, _ = self.sd.request("GET", "/messages/sync?limit=1000", token=self.reader_token)
            if st == 200:
                return seq in [x["seq"] for x in page["messages"] if x["group"] == "g"]
            if time.monotonic() > deadline:
                raise RuntimeError("sync answered %d: %s" % (st, page))
            time.sleep(0.05)

    def on_message(self, client, userdata, message):
        m = Msg(message)
        seq = int(m.props["seq"])
        missing = [where for where, ok in (("postgres", self.in_postgres(seq)), ("sync", self.in_sync(seq))) if not ok]
        with self.lock:
            self.got.append(m)
            if missing:
                self.unseen.append((seq, missing))

    def count(self):
        with self.lock:
            return len(self.got)

    def close(self):
        self.sub.close()
        if self.pg_conn is not None:
            self.pg_conn.close()


class PersistFirstTest(unittest.TestCase):
    def test_nothing_live_before_it_is_stored(self):
        with harness.Harness("persist-first") as h:
            pg = h.postgres()
            tok = {u: h.user_add(u) for u in ("alice", "bob", "carol")}
            pg.psql("INSERT INTO groups (id) VALUES ('g'); INSERT INTO memberships (group_id, user_id)"
                    " VALUES ('g', 'alice'), ('g', 'bob'), ('g', 'carol')")
            m = h.mosquitto(options={"reconnect_max_ms": "200"}).start()
            sd = h.syncd()
            live = CheckingSub(h, m, sd, "bob", tok["bob"], tok["carol"])
            self.addCleanup(live.close)
            a = RawV5(m.port, "alice", tok["alice"])
            # Database up: each delivery is already stored.
            for i in range(100):
                self.assertLess(a.publish("groups/g/messages", "up-%d" % i, qos=1), 0x80)
            self.assertTrue(wait_for(lambda: live.count() == 100), "delivered live: %d of 100" % live.count())
            # Database down: publishes are acknowledged from the spool, and nothing is delivered.
            pg.stop()
            for i in range(50):
                self.assertLess(a.publish("groups/g/messages", "down-%d" % i, qos=1), 0x80)
            self.assertTrue(m.wait_log("database unreachable", 30), m.log()[-3000:])
            # A bounded observation window: anything delivered before the database returns is a breach.
            time.sleep(3)
            self.assertEqual(live.count(), 100, "delivered live while PostgreSQL was down")
            pg.start()
            self.assertTrue(wait_for(lambda: live.count() == 150), "delivered after the outage: %d of 150"
                            % live.count())
            a.close()
            self.assertEqual([x.payload.decode() for x in live.got],
                             ["up-%d" % i for i in range(100)] + ["down-%d" % i for i in range(50)])
            self.assertEqual([int(x.props["seq"]) for x in live.got], list(range(1, 151)))
            self.assertEqual(live.unseen, [], "delivered before visible (seq, where it was missing)")


if __name__ == "__main__":
    unittest.main()

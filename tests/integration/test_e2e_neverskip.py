"""Never skip (SPEC 5.2) against the real writer: three brokers with the plugin on one PostgreSQL
commit batches to one group concurrently while a reader syncs and acks through the real mqsyncd,
and a second device pages with `after` only. Each device sees every seq exactly once, in order,
gapless, and every published message is stored exactly once."""
import os
import random
import threading
import time
import unittest

import harness
from mqttc import RawV5

BROKERS = 3
PER_BROKER = 6000 if os.environ.get("MQSYNC_LONG_TESTS") == "1" else 600


class Publisher(threading.Thread):
    def __init__(self, port, token, prefix, count):
        super().__init__(daemon=True)
        self.port, self.token, self.prefix, self.count = port, token, prefix, count
        self.acked, self.error = [], None

    def run(self):
        try:
            c = RawV5(self.port, "alice", self.token)
            rng = random.Random(self.prefix)
            for i in range(self.count):
                payload = "%s-%d" % (self.prefix, i)
                if c.publish("groups/hot/messages", payload, qos=1) < 0x80:
                    self.acked.append(payload)
                if rng.random() < 0.05:
                    time.sleep(rng.random() * 0.01)  # uneven bursts: batches of every size
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


class RealWriterNeverSkipTest(unittest.TestCase):
    def test_three_brokers_sync_and_ack_concurrently(self):
        with harness.Harness("e2e-neverskip") as h:
            pg = h.postgres()
            tok = {u: h.user_add(u) for u in ("alice", "reader")}
            pg.psql("INSERT INTO groups (id) VALUES ('hot'); INSERT INTO memberships (group_id, user_id)"
                    " VALUES ('hot', 'alice'), ('hot', 'reader')")
            brokers = [h.mosquitto(name="broker-%d" % i).start() for i in range(BROKERS)]
            sd = h.syncd()
            pubs = [Publisher(b.port, tok["alice"], "b%d" % i, PER_BROKER) for i, b in enumerate(brokers)]
            for p in pubs:
                p.start()
            acked, paged, payloads = [], [], []
            next_tok, rng, quiet = None, random.Random(7), 0
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                writing = any(p.is_alive() for p in pubs)
                # Device 1: sync from the server cursor, ack the last seq of the page.
                s, b, _ = sd.request("GET", "/messages/sync?limit=%d" % rng.randint(1, 60), token=tok["reader"])
                self.assertEqual(s, 200, b)
                seqs = [m["seq"] for m in b["messages"]]
                acked.extend(seqs)
                payloads.extend(m["payload"] for m in b["messages"])
                if seqs:
                    s, r, _ = sd.request("POST", "/messages/ack", {"acks": [{"group": "hot", "seq": seqs[-1]}]},
                                         token=tok["reader"])
                    self.assertEqual(s, 200, r)
                # Device 2: never acks, pages with its own token.
                q = "/messages/sync?limit=%d&after=%s" % (rng.randint(1, 60), next_tok or "AQ")
                s, b2, _ = sd.request("GET", q, token=tok["reader"])
                self.assertEqual(s, 200, b2)
                paged.extend(m["seq"] for m in b2["messages"])
                next_tok = b2["next"]
                total = sum(len(p.acked) for p in pubs)
                if not writing and not seqs and not b2["messages"] and len(acked) >= total:
                    quiet += 1
                    if quiet >= 2:
                        break
                else:
                    quiet = 0
            for p in pubs:
                p.join(30)
                self.assertIsNone(p.error)
                self.assertEqual(len(p.acked), PER_BROKER, "every publish accepted")
            total = BROKERS * PER_BROKER
            self.assertEqual(acked, list(range(1, total + 1)), "the acking device skipped or repeated a seq")
            self.assertEqual(paged, list(range(1, total + 1)), "the paging device skipped or repeated a seq")
            self.assertEqual(sorted(payloads), sorted(x for p in pubs for x in p.acked), "each message once")
            n, distinct, last = pg.psql("SELECT count(*), count(DISTINCT payload), (SELECT last_seq FROM groups"
                                        " WHERE id = 'hot') FROM messages WHERE group_id = 'hot'").split("|")
            self.assertEqual((int(n), int(distinct), int(last)), (total, total, total), "stored once each")
            batches = pg.psql("SELECT count(DISTINCT (created_at, sender)) FROM messages WHERE group_id = 'hot'")
            print("never-skip, real writer: %d messages from %d brokers (%s writer transactions), each seen "
                  "exactly once by both devices" % (total, BROKERS, batches))


if __name__ == "__main__":
    unittest.main()

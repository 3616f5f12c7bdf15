"""Never skip (SPEC 5.2): while two writers commit to one group as fast as they can, a reader that
syncs and acks in a loop, and a second device that pages with `after` only, each see every seq
exactly once and in order."""
import random
import threading
import time
import unittest

import harness

WRITER_TX = 250  # transactions per writer, 1-3 messages each


def writer(pg, gid, sender, rng, counts, errors):
    try:
        conn = pg.connect()
        cur = conn.cursor()
        for _ in range(WRITER_TX):
            n = rng.randint(1, 3)
            cur.execute("BEGIN")
            cur.execute("UPDATE groups SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq", (n, gid))
            last = cur.fetchone()[0]
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.003)  # commit late while holding the seqs
            for i in range(n):
                cur.execute("INSERT INTO messages (group_id, seq, sender, payload) VALUES (%s, %s, %s, %s)",
                            (gid, last - n + 1 + i, sender, ("%s:%d" % (sender, last - n + 1 + i)).encode()))
            cur.execute("COMMIT")
            counts[sender] = counts.get(sender, 0) + n
        conn.close()
    except Exception as e:  # reported by the test
        errors.append(e)


class NeverSkipTest(unittest.TestCase):
    def test_concurrent_writers(self):
        with harness.Harness("syncd-neverskip") as h:
            pg = h.postgres()
            tw1, tw2, tr = h.user_add("w1"), h.user_add("w2"), h.user_add("reader")
            sd = h.syncd()
            self.assertEqual(sd.request("POST", "/groups", {"id": "hot", "members": ["w2", "reader"]},
                                        token=tw1)[0], 201)
            counts, errors = {}, []
            ws = [threading.Thread(target=writer, args=(pg, "hot", u, random.Random(i), counts, errors))
                  for i, u in enumerate(("w1", "w2"))]
            for w in ws:
                w.start()

            acked, paged = [], []
            next_tok = None
            rng = random.Random(7)
            quiet = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:
                writing = any(w.is_alive() for w in ws)
                # Device 1: sync from the server cursor, ack what it got.
                s, b, _ = sd.request("GET", "/messages/sync?limit=%d" % rng.randint(1, 40), token=tr)
                self.assertEqual(s, 200, b)
                seqs = [m["seq"] for m in b["messages"]]
                acked.extend(seqs)
                if seqs:
                    s, r, _ = sd.request("POST", "/messages/ack", {"acks": [{"group": "hot", "seq": seqs[-1]}]},
                                         token=tr)
                    self.assertEqual(s, 200, r)
                # Device 2: never acks, pages with its own token.
                q = "/messages/sync?limit=%d" % rng.randint(1, 40) + ("&after=" + next_tok if next_tok else "&after=AQ")
                s, b2, _ = sd.request("GET", q, token=tr)
                self.assertEqual(s, 200, b2)
                paged.extend(m["seq"] for m in b2["messages"])
                next_tok = b2["next"]
                if not writing and not seqs and not b2["messages"]:
                    quiet += 1
                    if quiet >= 2:
                        break
                else:
                    quiet = 0
            for w in ws:
                w.join()
            self.assertEqual(errors, [])
            total = counts["w1"] + counts["w2"]
            self.assertEqual(int(pg.psql("SELECT last_seq FROM groups WHERE id = 'hot'")), total)
            self.assertEqual(acked, list(range(1, total + 1)), "the acking device skipped or repeated a seq")
            self.assertEqual(paged, list(range(1, total + 1)), "the paging device skipped or repeated a seq")
            print("never-skip: %d messages from 2 writers, each seen exactly once by both devices" % total)


if __name__ == "__main__":
    unittest.main()

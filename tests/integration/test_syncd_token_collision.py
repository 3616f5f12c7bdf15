"""Sync tokens key groups by a 32-bit hash: two of a user's groups whose keys collide must never make
a device skip messages (SPEC 5.2, never skips). g115728 and g2169004 share the FNV-1a-32 key
0x6d45eb4e."""
import unittest

import harness

A, B = "g115728", "g2169004"


def append(pg, gid, n):
    """n messages into gid, following the writers' protocol (docs/schema.md)."""
    pg.psql("BEGIN; UPDATE groups SET last_seq = last_seq + %d WHERE id = '%s';"
            "INSERT INTO messages (group_id, seq, sender, payload)"
            " SELECT '%s', s, 'writer', convert_to('m' || s, 'UTF8') FROM generate_series("
            "(SELECT last_seq FROM groups WHERE id = '%s') - %d + 1,"
            " (SELECT last_seq FROM groups WHERE id = '%s')) AS s; COMMIT" % (n, gid, gid, gid, n, gid))


class TokenCollisionTest(unittest.TestCase):
    def test_colliding_keys_never_skip(self):
        with harness.Harness("token-collision") as h:
            pg = h.postgres()
            sd = h.syncd()
            tok = h.user_add("dana")
            pg.psql("INSERT INTO groups (id) VALUES ('%s'), ('%s');"
                    "INSERT INTO memberships (group_id, user_id) VALUES ('%s', 'dana'), ('%s', 'dana')"
                    % (A, B, A, B))
            append(pg, A, 5)
            st, page, _ = sd.request("GET", "/messages/sync?limit=100", token=tok)
            self.assertEqual(st, 200, page)
            self.assertEqual([(m["group"], m["seq"]) for m in page["messages"]], [(A, s) for s in range(1, 6)])
            token = page["next"]
            # B gets messages after the device stored its token; its key is A's.
            append(pg, B, 5)
            st, page, _ = sd.request("GET", "/messages/sync?limit=100&after=" + token, token=tok)
            self.assertEqual(st, 200, page)
            got = [(m["group"], m["seq"]) for m in page["messages"]]
            # A collision may re-deliver A's messages; it must not skip B's.
            self.assertEqual([g for g in got if g[0] == B], [(B, s) for s in range(1, 6)], got)
            # And the token of that page keeps both positions right (duplicates allowed, never a gap).
            append(pg, A, 2)
            append(pg, B, 2)
            st, page, _ = sd.request("GET", "/messages/sync?limit=100&after=" + page["next"], token=tok)
            got = sorted((m["group"], m["seq"]) for m in page["messages"])
            for want in [(A, 6), (A, 7), (B, 6), (B, 7)]:
                self.assertIn(want, got)


if __name__ == "__main__":
    unittest.main()

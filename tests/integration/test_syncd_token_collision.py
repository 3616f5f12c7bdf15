"""Sync tokens key groups by a 32-bit hash: two of a user's groups whose keys collide must never make
a device skip messages (SPEC 5.2, never skips). g115728 and g2169004 share the FNV-1a-32 key
0x6d45eb4e."""
import base64
import unittest

import harness

A, B = "g115728", "g2169004"
KEY = 0x6D45EB4E


def fnv1a32(s):
    """The token's group key (docs/api.md, synctoken.c): FNV-1a 32 of the group id's bytes."""
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def token_entries(tok):
    """[(key, position)] of a v1 sync token: base64url of 0x01, then key (4 bytes BE) + LEB128."""
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    assert raw[0] == 1, raw
    out, i = [], 1
    while i < len(raw):
        key = int.from_bytes(raw[i:i + 4], "big")
        i += 4
        v = shift = 0
        while True:
            b = raw[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((key, v))
    return out


def append(pg, gid, n):
    """n messages into gid, following the writers' protocol (docs/schema.md)."""
    pg.psql("BEGIN; UPDATE groups SET last_seq = last_seq + %d WHERE id = '%s';"
            "INSERT INTO messages (group_id, seq, sender, payload)"
            " SELECT '%s', s, 'writer', convert_to('m' || s, 'UTF8') FROM generate_series("
            "(SELECT last_seq FROM groups WHERE id = '%s') - %d + 1,"
            " (SELECT last_seq FROM groups WHERE id = '%s')) AS s; COMMIT" % (n, gid, gid, gid, n, gid))


class TokenCollisionTest(unittest.TestCase):
    def test_the_two_keys_collide(self):
        self.assertEqual((fnv1a32(A), fnv1a32(B)), (KEY, KEY))
        self.assertNotEqual(fnv1a32("g1"), fnv1a32("g2"))

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
            # One entry under the colliding key, holding the lower of A's 5 and B's join point 0
            # (synctoken.h): the collision is real on the server, not only in this file.
            self.assertEqual(token_entries(token), [(KEY, 0)], "A and B share one entry")
            # B gets messages after the device stored its token; its key is A's.
            append(pg, B, 5)
            st, page, _ = sd.request("GET", "/messages/sync?limit=100&after=" + token, token=tok)
            self.assertEqual(st, 200, page)
            got = [(m["group"], m["seq"]) for m in page["messages"]]
            # A collision may re-deliver A's messages; it must not skip B's.
            self.assertEqual([g for g in got if g[0] == B], [(B, s) for s in range(1, 6)], got)
            self.assertEqual([k for k, _ in token_entries(page["next"])], [KEY], "A and B share one entry")
            # And the token of that page keeps both positions right (duplicates allowed, never a gap).
            append(pg, A, 2)
            append(pg, B, 2)
            st, page, _ = sd.request("GET", "/messages/sync?limit=100&after=" + page["next"], token=tok)
            self.assertEqual(st, 200, page)
            got = [(m["group"], m["seq"]) for m in page["messages"]]
            self.assertEqual(len(got), len(set(got)), "no duplicates within one page")
            # Re-delivery of earlier seqs is allowed; a gap is not: each group's seqs in the page run
            # contiguously up to its last message.
            for g in (A, B):
                seqs = [s for x, s in got if x == g]
                self.assertTrue(seqs and seqs == list(range(seqs[0], 8)) and seqs[0] <= 6, (g, got))


if __name__ == "__main__":
    unittest.main()

"""mqsyncd migrate: applies sql/ in order, once, safely from two processes at once."""
import threading
import unittest

import harness


class MigrateTest(unittest.TestCase):
    def test_fresh_twice_and_concurrent(self):
        with harness.Harness("migrate") as h:
            pg = h.postgres(migrate=False)
            # Two processes migrating an empty database at the same time: both succeed.
            results = []

            def run():
                results.append(harness.run_cli([harness.MQSYNCD, "migrate", "--db", pg.dsn()]))
            threads = [threading.Thread(target=run) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual([r.returncode for r in results], [0, 0], [r.stderr for r in results])
            applied = sorted(r.stderr.count("(0 migrations applied)") for r in results)
            self.assertEqual(applied, [0, 1], "exactly one of the two found nothing to do")
            rows = pg.psql("SELECT version, name FROM schema_migrations ORDER BY version")
            self.assertTrue(rows.startswith("1|0001_init.sql"), rows)
            # A third run is a no-op.
            r = h.migrate(pg.dsn())
            self.assertIn("(0 migrations applied)", r.stderr)
            tables = pg.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                             "WHERE schemaname = 'public'")
            self.assertEqual(tables, "groups,memberships,messages,presence,schema_migrations,spool_progress,user_tokens,users")

    def test_schema_constraints(self):
        with harness.Harness("schema") as h:
            pg = h.postgres()
            with self.assertRaises(RuntimeError):
                pg.psql("INSERT INTO users (id) VALUES ('bad/id')")
            pg.psql("INSERT INTO users (id) VALUES ('alice'); INSERT INTO groups (id) VALUES ('g1');"
                    "INSERT INTO memberships (group_id, user_id) VALUES ('g1', 'alice')")
            pg.psql("INSERT INTO messages (group_id, seq, sender, payload, cid) VALUES ('g1', 1, 'alice', 'x', 'c1')")
            with self.assertRaises(RuntimeError):  # (group, seq) unique
                pg.psql("INSERT INTO messages (group_id, seq, sender, payload) VALUES ('g1', 1, 'alice', 'y')")
            with self.assertRaises(RuntimeError):  # (sender, cid) unique
                pg.psql("INSERT INTO messages (group_id, seq, sender, payload, cid) "
                        "VALUES ('g1', 2, 'alice', 'y', 'c1')")
            with self.assertRaises(RuntimeError):  # read cursor never ahead of delivered
                pg.psql("UPDATE memberships SET read_seq = 5")
            self.assertEqual(pg.psql("SELECT count(*) FROM messages"), "1")

    def test_unreachable_database(self):
        r = harness.run_cli([harness.MQSYNCD, "migrate", "--db",
                             "host=127.0.0.1 port=%d dbname=x connect_timeout=2" % harness.free_port()])
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect to the database", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""mqsyncd: command line, user add, /healthz (including a database outage), error objects."""
import time
import unittest

import harness


def run(*args, env=None):
    return harness.run_cli([harness.MQSYNCD] + list(args), env=env)


class CommandLineTest(unittest.TestCase):
    def test_version_help_and_bad_flags(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^mqsyncd \d+\.\d+\.\d+\n$")
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--listen", "--db", "--threads", "--admin-token-file", "--receipts-max-members", "migrate",
                     "user add"):
            self.assertIn(flag, r.stdout)
        r = run("--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--bogus'", r.stderr)
        r = run("serve", "--threads", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--threads", r.stderr)
        r = run("serve", "--listen", "nonsense")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen", r.stderr)
        r = run("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", r.stderr)
        r = run("serve", "--admin-token-file", "/nonexistent/file")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--admin-token-file", r.stderr)


class ServeTest(unittest.TestCase):
    def test_user_add(self):
        with harness.Harness("useradd") as h:
            pg = h.postgres()
            tok = h.user_add("alice")
            self.assertRegex(tok, r"^[A-Za-z0-9_-]{43}$")
            admin_tok = h.user_add("root1", admin=True)
            self.assertNotEqual(tok, admin_tok)
            self.assertEqual(pg.psql("SELECT id || ':' || is_admin FROM users ORDER BY id"), "alice:false\nroot1:true")
            # Only the SHA-256 is stored, never the token.
            self.assertEqual(pg.psql("SELECT encode(token_hash, 'hex') FROM user_tokens WHERE user_id = 'alice'"),
                             __import__("hashlib").sha256(tok.encode()).hexdigest())
            self.assertEqual(pg.psql("SELECT count(*) FROM user_tokens WHERE token_hash::text LIKE '%%%s%%'"
                                     % tok[:10]), "0")
            r = run("user", "add", "alice", "--db", pg.dsn())
            self.assertEqual(r.returncode, 3)
            self.assertIn("already exists", r.stderr)
            r = run("user", "add", "bad+id", "--db", pg.dsn())
            self.assertEqual(r.returncode, 2)
            self.assertEqual(pg.psql("SELECT count(*) FROM users"), "2")

    def test_healthz_and_outage(self):
        with harness.Harness("healthz") as h:
            pg = h.postgres()
            sd = h.syncd()
            status, body, hdrs = sd.request("GET", "/healthz")
            self.assertEqual((status, body), (200, {"status": "ok"}))
            self.assertEqual(hdrs["Content-Type"], "application/json")
            status, body, _ = sd.request("GET", "/nope")
            self.assertEqual(status, 404)
            self.assertEqual(body["error"]["code"], "not_found")
            status, body, _ = sd.request("POST", "/healthz", body={})
            self.assertEqual(status, 405)
            self.assertEqual(body["error"]["code"], "method_not_allowed")
            status, body, _ = sd.request("POST", "/healthz", raw=b"x" * (2 * 1024 * 1024))
            self.assertEqual(status, 413)
            self.assertEqual(body["error"]["code"], "too_large")
            status, text, hdrs = sd.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertIn('mqsyncd_requests_total{route="GET /healthz",status="200"}', text)
            self.assertIn("mqsyncd_db_pool_connections 4", text)

            # Database down: 503 quickly, not a hang; back up: 200 again by itself.
            pg.stop()
            t0 = time.monotonic()
            status, body, _ = sd.request("GET", "/healthz")
            self.assertEqual(status, 503)
            self.assertEqual(body["error"]["code"], "unavailable")
            self.assertLess(time.monotonic() - t0, 10)
            pg.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status, body, _ = sd.request("GET", "/healthz")
                if status == 200:
                    break
                time.sleep(0.2)
            self.assertEqual(status, 200)

    def test_unmigrated_database(self):
        """Before `mqsyncd migrate` the API answers 503 (its statements cannot be prepared), then
        recovers by itself once the schema exists."""
        with harness.Harness("unmigrated") as h:
            pg = h.postgres(migrate=False)
            sd = h.syncd()
            status, body, _ = sd.request("GET", "/healthz")
            self.assertEqual((status, body["error"]["code"]), (503, "unavailable"))
            self.assertEqual(sd.request("GET", "/groups", token="x" * 43)[0], 503)
            h.migrate(pg.dsn())
            tok = h.user_add("alice")
            self.assertEqual(sd.request("GET", "/healthz")[0], 200)
            self.assertEqual(sd.request("GET", "/groups", token=tok)[:2], (200, {"groups": []}))


if __name__ == "__main__":
    unittest.main()

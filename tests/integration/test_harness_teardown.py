"""The harness leaves no server behind: after a failing test, and after the test process is killed."""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import harness

CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, %(dir)r)
    import harness
    with harness.Harness("teardown-child") as h:
        h.postgres()
        h.mosquitto().start()
        h.syncd()
        with open(%(out)r, "w") as f:
            f.write(" ".join(str(p.pid) for p in h.procs))
        if sys.argv[1] == "fail":
            raise AssertionError("deliberate test failure")
        time.sleep(600)
""")


class TeardownTest(unittest.TestCase):
    def run_child(self, mode):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "pids")
            script = os.path.join(d, "child.py")
            with open(script, "w") as f:
                f.write(CHILD % {"dir": os.path.dirname(os.path.abspath(__file__)), "out": out})
            child = subprocess.Popen([sys.executable, script, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while not (os.path.exists(out) and os.path.getsize(out) > 0) and time.monotonic() < deadline:
                if child.poll() is not None:
                    break
                time.sleep(0.1)
            with open(out) as f:
                pids = [int(p) for p in f.read().split()]
            self.assertEqual(len(pids), 3)
            for pid in pids:
                self.assertTrue(harness.pid_alive(pid) or mode == "fail")
            if mode != "fail":
                os.kill(child.pid, getattr(signal, mode))
            _, err = child.communicate(timeout=60)
            self.assertNotEqual(child.returncode, 0)
            deadline = time.monotonic() + 15
            while any(harness.pid_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual([p for p in pids if harness.pid_alive(p)], [], "servers left running")
            return err.decode()

    def test_failing_test_stops_servers(self):
        err = self.run_child("fail")
        self.assertIn("deliberate test failure", err)

    def test_sigterm_stops_servers(self):
        self.run_child("SIGTERM")

    def test_sigkill_stops_servers(self):
        self.run_child("SIGKILL")


if __name__ == "__main__":
    unittest.main()

"""The harness leaves no server behind (after a failing test, after the test process is killed), and
a server that crashes, is killed by a signal the test did not send, needs SIGKILL to stop or leaves
a sanitizer report fails the test that started it, with its logs kept in the build tree."""
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

# A tiny scenario in which a server misbehaves mid-test while the test itself asserts nothing that
# fails: the harness alone must turn it into a failure (exit status 1, a message naming the server).
CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, %(dir)r)
    import harness
    mode = sys.argv[1]
    with harness.Harness("crash-" + mode) as h:
        pg = h.postgres()
        m = h.mosquitto().start()
        sd = h.syncd()
        assert sd.request("GET", "/healthz")[0] == 200
        if mode == "segv-abrt":
            os.kill(m.proc.pid, signal.SIGSEGV)
            os.kill(sd.proc.pid, signal.SIGABRT)
            deadline = time.monotonic() + 30
            while (m.proc.running() or sd.proc.running()) and time.monotonic() < deadline:
                time.sleep(0.05)
        elif mode == "hang":
            os.kill(sd.proc.pid, signal.SIGSTOP)  # SIGTERM stays pending: only SIGKILL ends it
        elif mode == "sanitizer":
            with open(sd.proc.log_path, "a") as f:
                f.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\\n")
        elif mode == "asked":
            m.proc.kill9()  # signals the test sends itself are not failures
            sd.proc.signal(signal.SIGABRT)
            sd.proc.popen.wait(30)
        print("scenario finished", flush=True)
""")


def run_crash_child(mode):
    """Runs CRASH_CHILD in a subprocess; returns (exit status, stderr)."""
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "crash_child.py")
        with open(script, "w") as f:
            f.write(CRASH_CHILD % {"dir": os.path.dirname(os.path.abspath(__file__))})
        env = dict(os.environ, MQSYNC_STOP_TIMEOUT="3")
        r = subprocess.run([sys.executable, script, mode], capture_output=True, text=True, timeout=240, env=env)
        return r.returncode, r.stdout, r.stderr


class ServerFailureFailsTest(unittest.TestCase):
    def assert_fails(self, mode, *needles):
        rc, out, err = run_crash_child(mode)
        self.assertIn("scenario finished", out, err)  # the scenario's own assertions passed
        self.assertEqual(rc, 1, "the harness did not fail the test:\n" + err)
        self.assertIn("AssertionError: harness crash-%s: server failure:" % mode, err)
        for n in needles:
            self.assertRegex(err, n)
        logs = os.path.join(harness.BUILD_DIR, "test-logs", "crash_child", "crash-" + mode)
        self.assertIn("logs of crash-%s kept in %s" % (mode, logs), err)
        for f in ("mosquitto.log", "mqsyncd.log", "postgres.log"):
            self.assertTrue(os.path.exists(os.path.join(logs, f)), f)
        return err

    def test_sigsegv_mosquitto_and_sigabrt_mqsyncd_fail_the_test(self):
        # Under ASan (sanitizer pass) the runtime catches the SIGSEGV, reports it and aborts.
        segv = "SIGABRT, a signal the test did not send.*sanitizer report in the log of mosquitto" if harness.SANITIZE \
            else "SIGSEGV, a signal the test did not send"
        self.assert_fails("segv-abrt", r"mosquitto \(pid \d+\): killed by " + segv,
                          r"mqsyncd \(pid \d+\): killed by SIGABRT, a signal the test did not send")

    def test_server_needing_sigkill_fails_the_test(self):
        self.assert_fails("hang", r"mqsyncd \(pid \d+\) did not stop within 3 s of SIGTERM: SIGKILLed")

    def test_sanitizer_report_fails_the_test(self):
        self.assert_fails("sanitizer", "sanitizer report in the log of mqsyncd")

    def test_signals_the_test_sends_are_not_failures(self):
        rc, out, err = run_crash_child("asked")
        self.assertEqual((rc, out.strip()), (0, "scenario finished"), err)


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

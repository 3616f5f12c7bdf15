"""scripts/run brings up the whole stack; the walk-through it prints works when run as printed; Ctrl-C
stops everything it started, every server cleanly (scripts/run's exit status) and without a sanitizer
report. scripts/run runs the binaries of the pass this test belongs to (MQSYNC_BUILD_DIR): it builds
nothing itself."""
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def printed_commands(text):
    """The copy-paste lines of the walk-through, continuation lines joined, in order."""
    lines, out = text.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if re.match(r"^(mosquitto_sub|mosquitto_pub|curl) ", line):
            while line.endswith("\\"):
                i += 1
                line = line[:-1].rstrip() + " " + lines[i].strip()
            out.append(line)
        i += 1
    return out


class DemoWalkthroughTest(unittest.TestCase):
    def test_scripts_run_walkthrough(self):
        parent = tempfile.mkdtemp(prefix="mqsync-demo-")
        os.chmod(parent, 0o755)  # postgres and mosquitto run as their own users
        state = os.path.join(parent, "state")
        ports = {k: str(harness.free_port()) for k in ("PG", "HTTP", "MQTT", "WS")}
        env = dict(os.environ, MQSYNC_STATE_DIR=state, MQSYNC_PG_PORT=ports["PG"], MQSYNC_HTTP_PORT=ports["HTTP"],
                   MQSYNC_MQTT_PORT=ports["MQTT"], MQSYNC_WS_PORT=ports["WS"], MQSYNC_BUILD_DIR=harness.BUILD_DIR)
        if harness.SANITIZE:
            # Mosquitto 2.0.11 leaks 16 bytes at exit when it has a websockets listener, as scripts/run's
            # broker does (with or without the plugin): suppressed here only, see the file.
            env.update(harness.SANITIZER_ENV, MQSYNC_BROKER_PRELOAD=os.environ["MQSYNC_ASAN_PRELOAD"],
                       LSAN_OPTIONS="suppressions=" + os.path.join(ROOT, "tests", "support",
                                                                   "lsan-mosquitto-websockets.supp"))
        out_path = os.path.join(parent, "run.out")
        with open(out_path, "w") as out:
            run = subprocess.Popen(["bash", os.path.join(ROOT, "scripts", "run")], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        sub = None
        ok = False
        try:
            deadline = time.monotonic() + 300
            text = ""
            while "Ctrl-C stops everything." not in text:
                self.assertIsNone(run.poll(), "scripts/run exited:\n" + text)
                self.assertLess(time.monotonic(), deadline, text)
                time.sleep(0.2)
                with open(out_path) as f:
                    text = f.read()
            cmds = printed_commands(text)
            kinds = [c.split()[0] for c in cmds]
            self.assertEqual(kinds[:3], ["mosquitto_sub", "mosquitto_pub", "mosquitto_pub"], cmds)

            # 1. bob listens live, as printed (stopped by PID below). Connected once the plugin counts
            # him present (his SUBSCRIBE follows the CONNECT on the same connection).
            live_path = os.path.join(parent, "live.out")
            with open(live_path, "w") as live_out:
                sub = subprocess.Popen(shlex.split(cmds[0]), stdout=live_out, stderr=subprocess.STDOUT, text=True)
            psql = ["psql", "-X", "-h", "127.0.0.1", "-p", ports["PG"], "-U", "postgres", "-d", "mqsync", "-Atc",
                    "SELECT coalesce(sum(connections), 0) FROM presence WHERE user_id = 'bob'"]
            self.assertTrue(wait_for(lambda: subprocess.run(psql, capture_output=True, text=True).stdout.strip()
                                     == "1"), "bob's mosquitto_sub never connected")
            # 2. alice sends two messages while carol is offline.
            for c in cmds[1:3]:
                r = subprocess.run(shlex.split(c), capture_output=True, text=True, timeout=20)
                self.assertEqual(r.returncode, 0, r.stderr)
            # 3. carol catches up by sync, then acknowledges.
            curls = [c for c in cmds if c.startswith("curl")]
            # PUBACK means "spooled"; the commit follows within milliseconds.
            def demo_page():
                r = subprocess.run(shlex.split(curls[0]), capture_output=True, text=True, timeout=20)
                page = json.loads(r.stdout)
                return page if len([m for m in page["messages"] if m["group"] == "demo"]) >= 2 else None
            page = wait_for(demo_page)
            self.assertTrue(page, "carol's sync never returned both messages")
            texts = [m["payload"] for m in page["messages"] if m["group"] == "demo"]
            self.assertEqual(texts, ["hello carol", "are you there?"], page)
            last = [m for m in page["messages"] if m["group"] == "demo"][-1]
            r = subprocess.run(shlex.split(curls[1]), capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0)
            acked = json.loads(r.stdout)
            self.assertIn({"group": "demo", "delivered_seq": 2}, [{k: c[k] for k in ("group", "delivered_seq")}
                                                                  for c in acked["cursors"]], acked)
            self.assertEqual(last["seq"], 2)
            r = subprocess.run(shlex.split(curls[0]), capture_output=True, text=True, timeout=20)
            self.assertEqual(json.loads(r.stdout)["messages"], [], "nothing pending after the ack")
            # 4. alice sees who has what.
            r = subprocess.run(shlex.split(curls[2]), capture_output=True, text=True, timeout=20)
            members = {m["user"]: m for m in json.loads(r.stdout)["members"]}
            self.assertEqual(members["carol"]["delivered_seq"], 2)
            r = subprocess.run(shlex.split(curls[3]), capture_output=True, text=True, timeout=20)
            self.assertEqual(json.loads(r.stdout), {"status": "ok"})
            # bob received both live, stamped, once each.
            self.assertTrue(wait_for(lambda: read(live_path).count("sender:alice") >= 2), read(live_path))
            sub.send_signal(signal.SIGTERM)
            sub.wait(10)
            live = read(live_path)
            self.assertRegex(live, r"hello carol\s+id:\d+ seq:1 sender:alice ts:\S+Z")
            self.assertRegex(live, r"are you there\?\s+id:\d+ seq:2 sender:alice")
            self.assertEqual(live.count("sender:alice"), 2, live)
            ok = True
        finally:
            if sub is not None and sub.poll() is None:
                sub.kill()
                sub.wait()
            with open(os.path.join(state, "pids")) as f:  # includes the postmaster's own PID
                pids = [int(p) for p in f.read().split()]
            # Ctrl-C: everything it started stops.
            run.send_signal(signal.SIGINT)
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                raise
            deadline = time.monotonic() + 20
            while any(harness.pid_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = [p for p in pids if harness.pid_alive(p)]
            logs = {n: read(os.path.join(state, n + ".log")) for n in ("postgres", "mqsyncd", "mosquitto")}
            dirty = [n for n, text in logs.items() if any(m in text for m in harness.SANITIZER_MARKERS)]
            clean = not left and not dirty and run.returncode == 0
            if not (ok and clean):
                dest = os.path.join(harness.BUILD_DIR, "test-logs", "test_demo_walkthrough", "scripts-run")
                subprocess.run(["rm", "-rf", dest])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                subprocess.run(["cp", "-r", state, dest])
                subprocess.run(["rm", "-rf", os.path.join(dest, "pg")])
                subprocess.run(["cp", out_path, dest])
                print("logs kept in %s" % dest)
            subprocess.run(["rm", "-rf", parent])
            self.assertEqual(left, [], "servers left running")
            self.assertEqual(dirty, [], "sanitizer report in these logs")
            self.assertEqual(run.returncode, 0, "scripts/run reported a server failure:\n" + read(out_path)[-3000:])


if __name__ == "__main__":
    unittest.main()

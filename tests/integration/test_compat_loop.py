"""Compatibility (SPEC 9): the plugin finds out which broker loop it runs in (2.0's or 2.1's) and,
with no wake-up connection (wake_address none, the fallback every broker must honour), still
delivers messages and receipt broadcasts within the 100 ms idle TICK. 2.1's loop waits until its
next event (24 h when idle) unless the plugin asks for its TICK; this test fails there without it.
The cid user property is read on every broker too. Run it against another broker with MQSYNC_MOSQUITTO (tests/integration/CMakeLists.txt does, for
every broker of the matrix)."""
import json
import random
import re
import subprocess
import time
import unittest

import harness
from mqttc import RawV5, Sub

# Generous for a loaded machine and the sanitizer pass; the broken case waits for a keepalive or a
# $SYS update (10 s and more).
ARRIVAL_S = 3.0


def broker_version():
    """(major, minor) of the broker the harness starts, from its usage text ("mosquitto version X")."""
    out = subprocess.run([harness.MOSQUITTO, "-h"], capture_output=True, text=True)
    m = re.search(r"mosquitto version (\d+)\.(\d+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    return int(m.group(1)), int(m.group(2))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 10 ms


class CompatLoopTest(unittest.TestCase):
    def test_fallback_tick_delivers_without_wake(self):
        with harness.Harness("compat-loop") as h:
            pg = h.postgres()
            tok = {u: h.user_add(u) for u in ("alice", "bob")}
            pg.psql("INSERT INTO groups (id) VALUES ('g');"
                    "INSERT INTO memberships (group_id, user_id) VALUES ('g','alice'), ('g','bob')")
            m = h.mosquitto(options={"wake_address": "none"}).start()
            self.assertTrue(m.wait_log("mqsync: state loaded", 30), m.log()[-2000:])
            api = "2.1" if broker_version() >= (2, 1) else "2.0"
            self.assertIn("starting (broker API %s)" % api, m.log())

            bob = Sub(m.port, "bob", tok["bob"], ["groups/g/messages"])
            watch = Sub(m.port, "alice", tok["alice"], ["groups/g/receipts"])
            a = RawV5(m.port, "alice", tok["alice"])
            b = RawV5(m.port, "bob", tok["bob"])
            try:
                # Messages and receipts at random phases of the idle TICK: each arrives in time.
                for i in range(1, 6):
                    time.sleep(random.uniform(0.0, 0.25))
                    t0 = time.monotonic()
                    # The cid is found past other user properties (ingest.c walks the list itself).
                    props = [("note", "x" * i), ("cid", "c%d" % i), ("cid", "ignored")]
                    self.assertLess(a.publish("groups/g/messages", b"m%d" % i, qos=1, user_props=props), 0x80)
                    got = bob.get(ARRIVAL_S)
                    self.assertIsNotNone(got, "message %d not delivered within %.1f s" % (i, ARRIVAL_S))
                    self.assertEqual(got.payload, b"m%d" % i)
                    self.assertEqual(got.props.get("cid"), "c%d" % i)
                    time.sleep(random.uniform(0.0, 0.25))
                    self.assertLess(b.publish("groups/g/receipts", json.dumps({"read": i}), qos=1), 0x80)
                    ev = watch.get(ARRIVAL_S)
                    self.assertIsNotNone(ev, "receipt %d not broadcast within %.1f s" % (i, ARRIVAL_S))
                    self.assertEqual(json.loads(ev.payload), {"user": "bob", "delivered": i, "read": i})
                    self.assertLess(time.monotonic() - t0, 2 * ARRIVAL_S)
                # Idle, the loop wakes ~10 times a second, not in a busy loop (a wrong TICK answer on
                # 2.1 could ask for 0 ms).
                before = cpu_seconds(m.proc.popen.pid)
                time.sleep(2.0)
                used = cpu_seconds(m.proc.popen.pid) - before
                limit = 1.0 if harness.SANITIZE else 0.5
                self.assertLess(used, limit, "idle broker used %.2f s of CPU in 2 s" % used)
            finally:
                for c in (a, b, bob, watch):
                    c.close()


if __name__ == "__main__":
    unittest.main()

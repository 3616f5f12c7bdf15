"""Plugin: no broker queueing for the offline (SPEC 3.6). Persistent sessions of members subscribe and
go away; a large backlog is published: the broker's memory stays flat, a reconnecting session gets
nothing from the broker queue, and PostgreSQL (GET /messages/sync) has every seq once.
MQSYNC_LONG_TESTS=1: more messages, and every session syncs."""
import os
import select
import socket
import struct
import time
import unittest

import harness
from harness import wait_for
from mqttc import _str, _varint

LONG = os.environ.get("MQSYNC_LONG_TESTS") == "1"
USERS = 10
DEVICES = 20  # sessions per user: 200 persistent sessions
# Under ASan the broker's RSS says nothing (quarantine, shadow memory: +300 MB on bare mosquitto too)
# and publishing is ~5x slower: fewer messages, and the memory figure is only logged.
MESSAGES = 200000 if LONG else (10000 if harness.SANITIZE else 50000)
RSS_LIMIT_KB = 5 * 1024


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Session:
    """A raw MQTT 3.1.1 connection with clean session off (a persistent session)."""

    def __init__(self, port, user, token, client_id):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        var = _str("MQTT") + bytes([4, 0x80 | 0x40]) + struct.pack("!H", 60)
        body = _str(client_id) + _str(user) + _str(token)
        self.sock.sendall(bytes([0x10]) + _varint(len(var + body)) + var + body)
        ack = self._exact(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError("CONNACK %r" % ack)
        self.session_present = ack[2] & 1

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def subscribe(self, topic):
        body = struct.pack("!H", 1) + _str(topic) + b"\x01"
        self.sock.sendall(bytes([0x82]) + _varint(len(body)) + body)
        ack = self._exact(5)
        if ack[0] != 0x90 or ack[4] != 1:
            raise RuntimeError("SUBACK %r" % ack)

    def drain(self, quiet=1.5):
        """Payloads of the PUBLISHes that arrive until nothing comes for quiet seconds (QoS 1 ones acked)."""
        got, buf = [], b""
        self.sock.settimeout(quiet)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return got
            if not chunk:
                return got
            buf += chunk
            while len(buf) >= 2:
                length, mult, i = 0, 1, 1
                while i < len(buf) and buf[i] & 0x80:
                    length += (buf[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                if i >= len(buf):
                    break
                length += buf[i] * mult
                if len(buf) < i + 1 + length:
                    break
                head, body, buf = buf[0], buf[i + 1:i + 1 + length], buf[i + 1 + length:]
                if head >> 4 != 3:
                    continue
                tlen = struct.unpack("!H", body[:2])[0]
                qos = (head >> 1) & 3
                rest = body[2 + tlen:]
                if qos:
                    self.sock.sendall(b"\x40\x02" + rest[:2])
                    rest = rest[2:]
                got.append(rest)

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()


class Publisher:
    """QoS 1 publisher keeping up to window PUBLISHes in flight (v3.1.1, clean session)."""

    def __init__(self, port, user, token):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        var = _str("MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + struct.pack("!H", 60)
        body = _str("pub-" + user) + _str(user) + _str(token)
        self.sock.sendall(bytes([0x10]) + _varint(len(var + body)) + var + body)
        self.buf = b""
        self._need(4)
        if self.buf[3] != 0:
            raise RuntimeError("CONNACK %r" % self.buf[:4])
        self.buf = self.buf[4:]

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def run(self, topic, n, window=20):
        sent = acked = 0
        while acked < n:
            out = []
            while sent < n and sent - acked < window:
                mid = sent % 65535 + 1
                var = _str(topic) + struct.pack("!H", mid)
                payload = b"m%d" % sent
                out.append(bytes([0x32]) + _varint(len(var) + len(payload)) + var + payload)
                sent += 1
            if out:
                self.sock.sendall(b"".join(out))
            self._need(4)
            while len(self.buf) >= 4:
                if self.buf[0] != 0x40:
                    raise RuntimeError("expected PUBACK, got %r" % self.buf[:4])
                self.buf = self.buf[4:]
                acked += 1

    def close(self):
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


class PluginOfflineTest(unittest.TestCase):
    def setUp(self):
        self.h = harness.Harness("plugin-offline").__enter__()
        self.addCleanup(self.close_harness)

    def close_harness(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(t is self for t, _ in result.failures + result.errors)
        self.h.__exit__(AssertionError if failed else None, None, None)

    def sessions_away(self, m, tok, users):
        """200 persistent sessions subscribe to the group and go away."""
        for u in users:
            for d in range(DEVICES):
                s = Session(m.port, u, tok.get(u, "x"), "%s-dev%d" % (u, d))
                s.subscribe("groups/big/messages")
                s.close()

    def reconnect_quiet(self, m, tok, users):
        """Reconnects every session and returns how many bytes the broker sent them within 1.5 s."""
        sess = [Session(m.port, u, tok.get(u, "x"), "%s-dev%d" % (u, d)) for u in users for d in range(DEVICES)]
        self.assertTrue(all(s.session_present for s in sess), "the sessions were kept")
        got, deadline = 0, time.monotonic() + 1.5
        socks = [s.sock for s in sess]
        while time.monotonic() < deadline:
            r, _, _ = select.select(socks, [], [], max(0.0, deadline - time.monotonic()))
            for so in r:
                data = so.recv(65536)
                got += len(data)
                if not data:
                    socks.remove(so)
        for s in sess:
            s.close()
        return got

    def bare_run(self, users):
        """The same run on bare mosquitto (no plugin, default queue): RSS growth and burst, for the record."""
        m = self.h.mosquitto(name="bare", plugin=False, extra_conf="allow_anonymous true").start()
        self.sessions_away(m, {}, users)
        before = rss_kb(m.proc.pid)
        p = Publisher(m.port, "alice", "x")
        p.run("groups/big/messages", MESSAGES)
        p.close()
        growth = rss_kb(m.proc.pid) - before
        burst = self.reconnect_quiet(m, {}, users)
        m.proc.stop()
        return growth, burst

    def test_offline_sessions_not_queued(self):
        pg = self.h.postgres()
        users = ["u%02d" % i for i in range(USERS)]
        tok = {u: self.h.user_add(u) for u in users + ["alice"]}
        pg.psql("INSERT INTO groups (id) VALUES ('big');"
                "INSERT INTO memberships (group_id, user_id) SELECT 'big', id FROM users")
        sd = self.h.syncd()
        m = self.h.mosquitto().start()
        self.assertTrue(m.wait_log("mqsync: state loaded", 30), m.log()[-2000:])
        self.sessions_away(m, tok, users)
        # Every session's DISCONNECT has been handled (presence counts are back to zero).
        self.assertTrue(wait_for(lambda: pg.psql("SELECT coalesce(sum(connections), 0) FROM presence") == "0"))
        before = rss_kb(m.proc.pid)
        t0 = time.monotonic()
        p = Publisher(m.port, "alice", tok["alice"])
        p.run("groups/big/messages", MESSAGES)
        p.close()
        self.assertTrue(wait_for(lambda: pg.psql("SELECT last_seq FROM groups WHERE id = 'big'") == str(MESSAGES),
                                 120))
        took = time.monotonic() - t0
        growth = rss_kb(m.proc.pid) - before
        burst = self.reconnect_quiet(m, tok, users)
        bare_growth, bare_burst = self.bare_run(users)
        print("offline sessions %d, messages %d (%.1f s): broker RSS growth %d kB with mqsync, %d kB bare; "
              "bytes on reconnect %d with mqsync, %d bare" % (USERS * DEVICES, MESSAGES, took, growth, bare_growth,
                                                              burst, bare_burst), flush=True)
        self.assertEqual(burst, 0, "no stale burst from the broker queue")
        if not harness.SANITIZE:
            self.assertLessEqual(growth, RSS_LIMIT_KB)
        self.assertGreater(bare_burst, 0, "bare mosquitto does queue (the test would notice a regression)")
        # PostgreSQL has it all: each user's sync pages through every seq exactly once.
        for u in (users if LONG else users[:3]):
            seqs, after = [], None
            while True:
                q = "/messages/sync?limit=1000&group=big" + ("&after=" + after if after else "")
                st, page, _ = sd.request("GET", q, token=tok[u])
                self.assertEqual(st, 200, page)
                seqs.extend(x["seq"] for x in page["messages"])
                after = page["next"]
                if not page["has_more"]:
                    break
            self.assertEqual(seqs, list(range(1, MESSAGES + 1)), u)

    def test_queued_at_disconnect(self):
        """What Mosquitto already held for a session when its client went away (sent but not acknowledged,
        or queued behind max_inflight_messages) was committed while it was connected: it stays in the
        session and is sent on reconnect, as MQTT requires. Nothing published while it was away is."""
        pg = self.h.postgres()
        tok = {u: self.h.user_add(u) for u in ("alice", "bob")}
        pg.psql("INSERT INTO groups (id) VALUES ('big');"
                "INSERT INTO memberships (group_id, user_id) SELECT 'big', id FROM users")
        m = self.h.mosquitto().start()
        self.assertTrue(m.wait_log("mqsync: state loaded", 30), m.log()[-2000:])
        s = Session(m.port, "bob", tok["bob"], "bob-phone")
        s.subscribe("groups/big/messages")
        # bob's client reads nothing: 20 go in flight, the rest wait in its queue.
        p = Publisher(m.port, "alice", tok["alice"])
        p.run("groups/big/messages", 50)
        self.assertTrue(wait_for(lambda: pg.psql("SELECT last_seq FROM groups WHERE id = 'big'") == "50"))
        self.assertTrue(wait_for(lambda: "Sending PUBLISH to bob-phone" in m.log()))
        time.sleep(0.5)  # the stamped copies' fan-out follows the commit; harmless if it is already done
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sock.close()  # what had reached bob's socket is lost with it
        self.assertTrue(wait_for(lambda: pg.psql("SELECT coalesce(sum(connections), 0) FROM presence WHERE "
                                                 "user_id = 'bob'") == "0"))
        p.run("groups/big/messages", 30)  # published while away: m0..m29 again, seqs 51..80
        p.close()
        self.assertTrue(wait_for(lambda: pg.psql("SELECT last_seq FROM groups WHERE id = 'big'") == "80"))
        back = Session(m.port, "bob", tok["bob"], "bob-phone")
        got = back.drain()
        back.close()
        self.assertEqual(got, [b"m%d" % i for i in range(50)], "exactly what was held when it went away")


if __name__ == "__main__":
    unittest.main()

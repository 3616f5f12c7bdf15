"""mqttc: MQTT clients for the integration tests.

- RawV5: a minimal MQTT v5 client over a plain socket, so tests can assert reason codes (paho 1.6
  does not report PUBACK/PUBREC reason codes). Publish QoS 0/1/2 with user properties, subscribe.
- Sub: a paho subscriber (v5 or v3.1.1) that collects messages with their user properties.
"""
import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NOT_AUTHORIZED = 0x87


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _get_varint(body, i):
    """The variable byte integer at body[i]: (value, index after it)."""
    n, mult = 0, 1
    while True:
        b = body[i]
        i += 1
        n += (b & 0x7F) * mult
        if not b & 0x80:
            return n, i
        mult *= 128


class ConnectRefused(Exception):
    def __init__(self, code):
        super().__init__("CONNACK reason 0x%02x" % code)
        self.code = code


class RawV5:
    """One MQTT v5 connection. Raises ConnectRefused if the broker refuses it."""

    def __init__(self, port, username=None, password=None, client_id="", keepalive=60, timeout=10,
                 clean_start=True, session_expiry=None, receive_max=None):
        """password may be bytes (the MQTT password is binary). clean_start False with
        session_expiry (seconds) keeps a persistent session; receive_max limits the QoS 1/2
        messages the broker sends before this client acknowledges (see read_publish/puback)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.mid = 0
        self.received = []  # PUBLISH packets (fixed header byte + body) that arrived while waiting for something else
        flags = 0x02 if clean_start else 0x00
        payload = _str(client_id)
        if username is not None:
            flags |= 0x80
            payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
        props = b""
        if session_expiry is not None:
            props += b"\x11" + struct.pack("!I", session_expiry)
        if receive_max is not None:
            props += b"\x21" + struct.pack("!H", receive_max)
        var = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + _varint(len(props)) + props
        self._send(0x10, var + payload)
        ptype, body = self._read()
        if ptype >> 4 != 2:
            raise RuntimeError("expected CONNACK")
        self.session_present = bool(body[0] & 1)
        if body[1] != 0:
            self.close()
            raise ConnectRefused(body[1])

    def _send(self, header, body):
        self.sock.sendall(bytes([header]) + _varint(len(body)) + body)

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by broker")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read(self):
        header = self._recv_exact(1)[0]
        mult, length = 1, 0
        while True:
            b = self._recv_exact(1)[0]
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
        return header, self._recv_exact(length)

    def _wait(self, ptype, mid):
        """Reads until a packet of type ptype (high nibble) for mid arrives; returns its body."""
        while True:
            header, body = self._read()
            if header >> 4 == 3:
                self.received.append(bytes([header]) + body)
                continue
            if header >> 4 == ptype and struct.unpack("!H", body[:2])[0] == mid:
                return body

    def _next_mid(self):
        self.mid = self.mid % 65535 + 1
        return self.mid

    def publish(self, topic, payload, qos=1, user_props=(), retain=False):
        """Publishes and returns the PUBACK (QoS 1) / PUBREC (QoS 2) reason code; None for QoS 0."""
        if isinstance(payload, str):
            payload = payload.encode()
        props = b"".join(b"\x26" + _str(k) + _str(v) for k, v in user_props)
        header = 0x30 | (qos << 1) | (1 if retain else 0)
        var = _str(topic)
        mid = None
        if qos > 0:
            mid = self._next_mid()
            var += struct.pack("!H", mid)
        self._send(header, var + _varint(len(props)) + props + payload)
        if qos == 0:
            return None
        body = self._wait(4 if qos == 1 else 5, mid)
        rc = body[2] if len(body) > 2 else 0
        if qos == 2 and rc < 0x80:
            self._send(0x62, struct.pack("!H", mid))
            self._wait(7, mid)
        return rc

    def subscribe(self, topic, qos=1):
        """Returns the SUBACK reason code."""
        mid = self._next_mid()
        self._send(0x82, struct.pack("!H", mid) + _varint(0) + _str(topic) + bytes([qos]))
        body = self._wait(9, mid)
        plen, i = _get_varint(body, 2)  # skip the properties
        return body[i + plen]

    def read_publish(self, timeout):
        """The next PUBLISH (one that arrived earlier first) as (topic, payload, qos, packet id or
        None, retain flag), without acknowledging it; None after timeout. Raises ConnectionError when the broker
        closed the connection."""
        if not self.received:
            self.sock.settimeout(timeout)
            try:
                while True:
                    header, body = self._read()
                    if header >> 4 == 3:
                        self.received.append(bytes([header]) + body)
                        break
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(None)
        raw = self.received.pop(0)
        qos = (raw[0] >> 1) & 3
        body = raw[1:]
        tlen = struct.unpack("!H", body[:2])[0]
        topic = body[2:2 + tlen].decode()
        i, mid = 2 + tlen, None
        if qos:
            mid = struct.unpack("!H", body[i:i + 2])[0]
            i += 2
        plen, i = _get_varint(body, i)
        return topic, body[i + plen:], qos, mid, raw[0] & 1

    def read_all(self, quiet=1.0, ack=False):
        """(topic, payload) of every PUBLISH until none arrives for quiet seconds, acknowledging QoS 1
        ones if ack."""
        out = []
        while True:
            p = self.read_publish(quiet)
            if p is None:
                return out
            out.append(p[:2])
            if ack and p[2] == 1:
                self.puback(p[3])

    def puback(self, mid):
        self._send(0x40, struct.pack("!H", mid))

    def close(self):
        try:
            self._send(0xE0, b"\x00\x00")
        except OSError:
            pass
        self.sock.close()


def connect_rc(port, username, password, client_id=""):
    """CONNACK reason code of a v5 connection attempt (0 = accepted; the connection is closed)."""
    try:
        RawV5(port, username, password, client_id).close()
        return 0
    except ConnectRefused as e:
        return e.code


class Msg:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.props = {}
        up = getattr(getattr(m, "properties", None), "UserProperty", None)
        for k, v in up or []:
            self.props[k] = v


class Sub:
    """A paho client subscribed to topics; collects messages. v5 by default, v311 with proto=4."""

    def __init__(self, port, username, password, topics, proto=5, client_id="", qos=1, clean=True):
        self.q = queue.Queue()
        self.suback = []
        self.disconnected = threading.Event()
        self._subscribed = threading.Event()
        protocol = paho.MQTTv5 if proto == 5 else paho.MQTTv311
        if proto == 5:
            self.c = paho.Client(client_id=client_id, protocol=protocol)
        else:
            self.c = paho.Client(client_id=client_id, protocol=protocol, clean_session=clean)
        self.c.username_pw_set(username, password)
        self.c.on_message = lambda c, u, m: self.q.put(Msg(m))
        self.c.on_disconnect = lambda *a: self.disconnected.set()

        def on_subscribe(c, u, mid, granted, *rest):
            self.suback.extend(getattr(g, "value", g) for g in granted)
            self._subscribed.set()
        self.c.on_subscribe = on_subscribe
        rc = self.c.connect("127.0.0.1", port, keepalive=60)
        if rc != 0:
            raise RuntimeError("connect failed: %s" % rc)
        self.c.loop_start()
        if topics:
            self.c.subscribe([(t, qos) for t in topics])
            if not self._subscribed.wait(10):
                raise RuntimeError("no SUBACK")

    def get(self, timeout=5.0):
        """Next message, or None after timeout."""
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def take(self, n, timeout=10.0):
        """n messages (fewer if the time runs out)."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            m = self.get(max(0.0, deadline - time.monotonic()))
            if m is None:
                break
            out.append(m)
        return out

    def quiet(self, timeout=1.0):
        """True if nothing arrives within timeout."""
        return self.get(timeout) is None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

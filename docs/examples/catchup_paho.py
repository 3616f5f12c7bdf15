#!/usr/bin/python3
"""catchup_paho: what a device does on reconnect, over MQTT only (docs/clients.md).

1. Connect (MQTT v5, username = user id, password = token) and subscribe to users/{uid}/inbox and
   to the groups' live topics, so nothing committed from now on is missed.
2. Catch up: publish {"after": NEXT, "limit": 1000, "id": ...} to users/{uid}/sync; the broker sends
   this connection the page's messages on groups/{gid}/messages (user property replay=1), then
   {"event": "sync", "id": ..., "count": n, "has_more": bool, "next": TOKEN} on users/{uid}/inbox.
   Repeat with after = next while has_more. Keep next: it is where this device resumes next time.
3. Acknowledge: publish {"delivered": SEQ} to groups/{gid}/receipts with the highest seq processed.

A live message can also arrive during the catch-up: dedupe by (group, seq).

Usage: catchup_paho.py HOST PORT USER TOKEN [--after TOKEN] [--group G] [--limit N] [--no-ack]
Prints one line per message ("group seq payload") and the final token as "next TOKEN".
Needs python3-paho-mqtt (1.6).
"""
import argparse
import base64
import json
import queue
import socket
import sys
import uuid

import paho.mqtt.client as mqtt



class CatchUp:
    """One MQTT v5 connection that pages through a user's backlog."""

    def __init__(self, host, port, user, token, client_id=None, envelope=False):
        self.user = user
        self.envelope = envelope
        self.q = queue.Queue()
        self.c = mqtt.Client(client_id=client_id or "catchup-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, token)
        self.c.on_message = lambda c, u, m: self.q.put(m)
        if self.c.connect(host, port, keepalive=60) != 0:
            raise RuntimeError("connect failed")
        # PUBACKs go out one per message: without TCP_NODELAY, Nagle holds them back and the broker,
        # which sends at most max_inflight_messages (20) unacknowledged, waits for them.
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        self.c.subscribe("users/%s/inbox" % user, qos=1)

    def page(self, after=None, limit=1000, group=None, req_id=None, timeout=30.0):
        """Asks for one page. Returns (messages, event): messages as dicts {group, seq, id, sender,
        ts, payload (bytes), replay}, in arrival order; event the sync event (a dict)."""
        req_id = req_id or uuid.uuid4().hex
        req = {"limit": limit, "id": req_id}
        if after is not None:
            req["after"] = after
        if group is not None:
            req["group"] = group
        self.c.publish("users/%s/sync" % self.user, json.dumps(req), qos=1)
        msgs = []
        while True:
            m = self.q.get(timeout=timeout)
            if m.topic == "users/%s/inbox" % self.user:
                ev = json.loads(m.payload)
                if ev.get("event") == "sync" and ev.get("id") == req_id:
                    return msgs, ev
                continue  # another inbox event (member_added, ...): a real app handles it
            msgs.append(self._message(m))

    def _message(self, m):
        gid = m.topic.split("/")[1]
        if self.envelope:  # plugin_opt_envelope json: the SPEC 5.1 object
            o = json.loads(m.payload)
            payload = o["payload"].encode() if o["encoding"] == "utf8" else base64.b64decode(o["payload"])
            return {"group": gid, "seq": o["seq"], "id": o["id"], "sender": o["sender"], "ts": o["ts"],
                    "payload": payload, "replay": o.get("replay", False)}
        p = dict(getattr(m.properties, "UserProperty", []) or [])
        return {"group": gid, "seq": int(p["seq"]), "id": int(p["id"]), "sender": p["sender"], "ts": p["ts"],
                "payload": m.payload, "replay": p.get("replay") == "1"}

    def catch_up(self, after=None, limit=1000, group=None, ack=True, on_message=None):
        """Pages until has_more is false; returns (next token, {group: highest seq seen}). With ack,
        publishes a delivered receipt per group at the end."""
        highest = {}
        while True:
            msgs, ev = self.page(after=after, limit=limit, group=group)
            if "error" in ev:
                raise RuntimeError("catch-up failed: %s (retry later)" % ev["error"])
            for m in msgs:
                if m["seq"] <= highest.get(m["group"], 0):
                    continue  # seen already (live and replayed)
                highest[m["group"]] = m["seq"]
                if on_message:
                    on_message(m)
            after = ev["next"]
            if not ev["has_more"]:
                break
        if ack:
            for gid, seq in highest.items():
                self.c.publish("groups/%s/receipts" % gid, json.dumps({"delivered": seq}), qos=1).wait_for_publish()
        return after, highest

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("token")
    ap.add_argument("--after")
    ap.add_argument("--group")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--no-ack", action="store_true")
    a = ap.parse_args()
    cu = CatchUp(a.host, a.port, a.user, a.token)
    try:
        def show(m):
            print("%s %d %s" % (m["group"], m["seq"], m["payload"].decode("utf-8", "replace")))
        nxt, _ = cu.catch_up(after=a.after, limit=a.limit, group=a.group, ack=not a.no_ack, on_message=show)
        print("next %s" % nxt)
    finally:
        cu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""syncd_bench: mqsyncd figures for docs/PERFORMANCE.md (section "mqsyncd").

  MQSYNC_BUILD_DIR=build /usr/bin/python3 bench/syncd_bench.py [--duration 10] [--connections 16]

Starts a throwaway PostgreSQL and mqsyncd through the test harness (127.0.0.1, free ports) and
measures, in one run:
  1. sync throughput: wrk on GET /messages/sync returning a 100-message page, then pgbench running
     the very statements mqsyncd runs for that request (token lookup, memberships, messages; -M
     prepared, as mqsyncd prepares them, and for reference -M extended) with
     as many clients as mqsyncd has database connections (--threads): the ratio is what HTTP, auth
     and JSON cost on top of the bare SQL at equal database concurrency;
  2. catch-up: a user offline in 100 groups with a 100,000-message backlog syncs (limit 1000) and
     acks until nothing is left (keep-alive HTTP client);
  3. long-poll wake latency: commit-to-response time of a held sync, single and 500 held at once.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402

MSG_COLUMNS = ("m.id, m.group_id, m.seq, m.sender, to_char(m.created_at AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), m.payload, m.cid")


class Client:
    """A keep-alive HTTP/1.1 client for one mqsyncd."""

    def __init__(self, port, token):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.c.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.h)
        r = self.c.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:200]))
        return json.loads(data) if data else None


def send(conn, gid, sender, payload):
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("UPDATE groups SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq", (gid,))
    seq = cur.fetchone()[0]
    cur.execute("INSERT INTO messages (group_id, seq, sender, payload) VALUES (%s, %s, %s, %s)",
                (gid, seq, sender, payload.encode()))
    cur.execute("COMMIT")
    return time.monotonic()


def rate(text, pattern):
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else float("nan")


def bench_throughput(h, pg, sd, args, report):
    tb = h.user_add("reader")
    h.user_add("writer")
    pg.psql("INSERT INTO groups (id, last_seq) VALUES ('page', 100);"
            "INSERT INTO memberships (group_id, user_id) VALUES ('page', 'reader'), ('page', 'writer');"
            "INSERT INTO messages (group_id, seq, sender, payload) SELECT 'page', s, 'writer', "
            "convert_to('message number ' || s || ' of the benchmark page', 'UTF8') FROM generate_series(1, 100) s")
    page = Client(sd.port, tb).call("GET", "/messages/sync")
    assert len(page["messages"]) == 100, page
    tmp = tempfile.mkdtemp(prefix="syncd-bench-")
    lua = os.path.join(tmp, "sync.lua")
    with open(lua, "w") as f:
        f.write('wrk.headers["Authorization"] = "Bearer %s"\n' % tb)
    wrk = subprocess.run(["wrk", "-t2", "-c%d" % args.connections, "-d%ds" % args.duration, "--latency", "-s", lua,
                          "http://127.0.0.1:%d/messages/sync" % sd.port], capture_output=True, text=True)
    http_rps = rate(wrk.stdout, r"^Requests/sec:\s+([\d.]+)")
    p50 = re.search(r"^\s+50%\s+(\S+)", wrk.stdout, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", wrk.stdout, re.M)
    # The same statements mqsyncd runs for this request, as pgbench's extended protocol sends them.
    th = hashlib.sha256(tb.encode()).hexdigest()
    script = os.path.join(tmp, "sync.sql")
    with open(script, "w") as f:
        f.write("SELECT user_id FROM user_tokens WHERE token_hash = decode('%s', 'hex');\n" % th)
        f.write("SELECT m.group_id, m.joined_seq, m.delivered_seq, g.last_seq FROM memberships m "
                "JOIN groups g ON g.id = m.group_id WHERE m.user_id = 'reader' AND (NULL::text IS NULL OR "
                "m.group_id = NULL) ORDER BY m.group_id COLLATE \"C\";\n")
        f.write("SELECT %s FROM unnest('{page}'::text[], '{0}'::bigint[], '{100}'::bigint[]) AS r(gid, lo, hi) "
                "JOIN messages m ON m.group_id = r.gid AND m.seq > r.lo AND m.seq <= r.hi "
                "ORDER BY m.group_id COLLATE \"C\", m.seq;\n" % MSG_COLUMNS)
    # pgbench reads ":MI" and ":SS" in the to_char format as variables: spell the colons as chr(58).
    with open(script) as f:
        sql = f.read().replace("HH24:MI:SS", "HH24' || chr(58) || 'MI' || chr(58) || 'SS")
    with open(script, "w") as f:
        f.write(sql)
    # mqsyncd prepares these statements on every pooled connection: -M prepared is the same work.
    tps = {}
    for mode in ("prepared", "extended"):
        pgb = subprocess.run(["pgbench", "-n", "-M", mode, "-c%d" % args.threads, "-j2", "-T%d" % args.duration,
                              "-f", script, "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "mqsync"],
                             capture_output=True, text=True)
        tps[mode] = rate(pgb.stdout, r"^tps = ([\d.]+)")
    sql_tps = tps["prepared"]
    if http_rps != http_rps or sql_tps != sql_tps:
        print(wrk.stdout, wrk.stderr, pgb.stdout, pgb.stderr)
    report.append("sync, 100-message page: mqsyncd %.0f req/s (wrk -c%d, p50 %s, p99 %s); pgbench -c%d, same 3 "
                  "statements: %.0f tx/s prepared (ratio %.2f), %.0f tx/s unprepared (ratio %.2f)"
                  % (http_rps, args.connections, p50.group(1) if p50 else "?", p99.group(1) if p99 else "?",
                     args.threads, sql_tps, http_rps / sql_tps, tps["extended"], http_rps / tps["extended"]))


def bench_catchup(h, pg, sd, report):
    tok = h.user_add("offline")
    h.user_add("busy")
    pg.psql("INSERT INTO groups (id) SELECT 'cg' || g FROM generate_series(1, 100) g;"
            "INSERT INTO memberships (group_id, user_id) SELECT 'cg' || g, u FROM generate_series(1, 100) g, "
            "(VALUES ('offline'), ('busy')) v(u);"
            "INSERT INTO messages (group_id, seq, sender, payload) SELECT 'cg' || g, s, 'busy', "
            "convert_to('backlog message ' || s || ' in group ' || g, 'UTF8') "
            "FROM generate_series(1, 100) g, generate_series(1, 1000) s;"
            "UPDATE groups SET last_seq = 1000 WHERE id LIKE 'cg%'")
    pg.psql("VACUUM ANALYZE messages")
    pg.psql("VACUUM ANALYZE memberships")
    c = Client(sd.port, tok)
    got = pages = 0
    t0 = time.monotonic()
    while True:
        b = c.call("GET", "/messages/sync?limit=1000")
        if not b["messages"]:
            break
        pages += 1
        got += len(b["messages"])
        last = {}
        for m in b["messages"]:
            last[m["group"]] = m["seq"]
        c.call("POST", "/messages/ack", {"acks": [{"group": g, "seq": s} for g, s in last.items()]})
    took = time.monotonic() - t0
    assert got == 100000, got
    report.append("catch-up: 100,000 messages in 100 groups by sync (limit 1000) + ack: %.2f s "
                  "(%d pages, %.0f messages/s)" % (took, pages, got / took))


def bench_wake(h, pg, sd, report):
    tr = h.user_add("sleeper")
    h.user_add("waker")
    pg.psql("INSERT INTO groups (id) VALUES ('wake');"
            "INSERT INTO memberships (group_id, user_id) VALUES ('wake', 'sleeper'), ('wake', 'waker')")
    db = pg.connect()
    lat = []
    c = Client(sd.port, tr)
    for i in range(100):
        res = {}

        def poll():
            res["b"] = c.call("GET", "/messages/sync?wait=10")
            res["t"] = time.monotonic()
        t = threading.Thread(target=poll)
        t.start()
        # Wait until mqsyncd holds the request.
        while True:
            _, text, _ = sd.request("GET", "/metrics")
            if "mqsyncd_longpoll_waiting 1" in text:
                break
            time.sleep(0.002)
        committed = send(db, "wake", "waker", "ping %d" % i)
        t.join()
        lat.append(res["t"] - committed)
        c.call("POST", "/messages/ack", {"ids": [res["b"]["messages"][0]["id"]]})
    lat.sort()
    report.append("long-poll wake (commit to response, 100 runs): median %.2f ms, p99 %.2f ms"
                  % (statistics.median(lat) * 1000, lat[98] * 1000))

    # 500 held at once (one user, 500 devices), all woken by one commit.
    n = 500
    done = []
    lock = threading.Lock()
    s, b, _ = sd.request("GET", "/messages/sync", token=tr)
    tok = b["next"]

    def held():
        cc = Client(sd.port, tr)
        cc.call("GET", "/messages/sync?wait=30&after=" + tok)
        with lock:
            done.append(time.monotonic())
    ts = [threading.Thread(target=held) for _ in range(n)]
    for t in ts:
        t.start()
    while True:
        _, text, _ = sd.request("GET", "/metrics")
        m = re.search(r"^mqsyncd_longpoll_waiting (\d+)", text, re.M)
        if m and int(m.group(1)) == n:
            break
        time.sleep(0.01)
    _, text, _ = sd.request("GET", "/metrics")
    in_use = re.search(r"^mqsyncd_db_pool_in_use (\d+)", text, re.M).group(1)
    committed = send(db, "wake", "waker", "to all devices")
    for t in ts:
        t.join()
    report.append("%d held long-polls (pool in use while held: %s): all answered %.0f ms after one commit"
                  % (n, in_use, (max(done) - committed) * 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    report = []
    with harness.Harness("syncd-bench") as h:
        pg = h.postgres()
        sd = h.syncd(threads=args.threads)
        bench_throughput(h, pg, sd, args, report)
        bench_catchup(h, pg, sd, report)
        bench_wake(h, pg, sd, report)
    print("mqsyncd benchmark (%d cores, mqsyncd --threads %d, PostgreSQL 15 fsync off):" % (os.cpu_count(),
                                                                                           args.threads))
    for line in report:
        print("  " + line)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""syncd_bench: mqsyncd figures for docs/PERFORMANCE.md (section "mqsyncd").

  MQSYNC_BUILD_DIR=build /usr/bin/python3 bench/syncd_bench.py [--duration 10] [--connections 16]

Starts a throwaway PostgreSQL and mqsyncd through the test harness (127.0.0.1, free ports) and
measures, in one run:
  1. sync throughput: wrk on GET /messages/sync returning a 100-message page, then pgbench running
     the very statements mqsyncd prepares for that request (token lookup, memberships, messages),
     read from syncd/db.c through the C preprocessor (so macros expand as they do for mqsyncd), fed
     the request's values as pgbench variables; -M prepared, as mqsyncd prepares them, and for
     reference -M extended; with
     as many clients as mqsyncd has database connections (--threads): the ratio is what HTTP, auth
     and JSON cost on top of the bare SQL at equal database concurrency;
  2. catch-up: a user offline in 100 groups with a 100,000-message backlog syncs (limit 1000) and
     acks until nothing is left (keep-alive HTTP client);
  3. long-poll wake latency: commit-to-response time of a held sync, single and 500 held at once.

Pass condition: no failed request (wrk's non-2xx responses and socket errors count as failures),
no lost message (the catch-up receives every message exactly once, every woken poll its message).
--quick: short runs and a small backlog (a smoke test of the benchmark itself, not figures).
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def prepared_statements():
    """{name: SQL} of the statements mqsyncd prepares on every pooled connection: syncd/db.c's table,
    preprocessed by the C compiler so DB_MSG_COLUMNS and MQS_SQL_TS expand exactly as in mqsyncd."""
    inc = subprocess.run(["pg_config", "--includedir"], capture_output=True, text=True, check=True).stdout.strip()
    cpp = subprocess.run(["cc", "-E", "-P", "-I", os.path.join(ROOT, "syncd"), "-I", os.path.join(ROOT, "common"),
                          "-I", inc, os.path.join(ROOT, "syncd", "db.c")], capture_output=True, text=True)
    if cpp.returncode != 0:
        raise RuntimeError("cc -E syncd/db.c failed: " + cpp.stderr)
    lit = r'"(?:[^"\\]|\\.)*"'
    out = {}
    for m in re.finditer(r'\{\s*"(mqs_\w+)"\s*,\s*((?:%s\s*)+),\s*\d+\s*\}' % lit, cpp.stdout):
        parts = re.findall(lit, m.group(2))
        out[m.group(1)] = "".join(p[1:-1].replace('\\"', '"').replace("\\\\", "\\") for p in parts)
    for name in ("mqs_auth", "mqs_sync_groups", "mqs_sync_messages"):
        if name not in out:
            raise RuntimeError("statement %s not found in syncd/db.c (found %s)" % (name, sorted(out)))
    return out


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
    failed = [m.group(0) for m in re.finditer(r"^\s*(Non-2xx or 3xx responses|Socket errors):.*$", wrk.stdout, re.M)]
    if wrk.returncode != 0 or failed:
        raise RuntimeError("wrk: failed requests: %s\n%s%s" % (failed, wrk.stdout, wrk.stderr))
    http_rps = rate(wrk.stdout, r"^Requests/sec:\s+([\d.]+)")
    p50 = re.search(r"^\s+50%\s+(\S+)", wrk.stdout, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", wrk.stdout, re.M)
    # The statements mqsyncd prepares, in the order it runs them for this request, with the request's
    # values as pgbench variables ($n -> :name). Deviations, both forced by pgbench: the group filter
    # ($2 of mqs_sync_groups) is NULL for a plain sync and pgbench cannot send a NULL parameter, so it
    # is the literal NULL; pgbench reads ":MI" and ":SS" of the to_char format as variables, so
    # those colons are spelled chr(58).
    stmts = prepared_statements()
    th = hashlib.sha256(tb.encode()).hexdigest()
    plan = [("mqs_auth", ["tokhash"]), ("mqs_sync_groups", ["uid", None]), ("mqs_sync_messages", ["gids", "los", "his"])]
    script = os.path.join(tmp, "sync.sql")
    with open(script, "w") as f:
        for name, params in plan:
            sql = stmts[name].replace("HH24:MI:SS", "HH24' || chr(58) || 'MI' || chr(58) || 'SS")
            for i in range(len(params), 0, -1):  # $10 before $1
                sql = sql.replace("$%d" % i, ":" + params[i - 1] if params[i - 1] else "NULL")
            f.write(sql + ";\n")
    pgvars = ["-D", "tokhash=" + th, "-D", "uid=reader", "-D", "gids={page}", "-D", "los={0}", "-D", "his={100}"]
    # mqsyncd prepares these statements on every pooled connection: -M prepared is the same work.
    tps = {}
    for mode in ("prepared", "extended"):
        pgb = subprocess.run(["pgbench", "-n", "-M", mode, "-c%d" % args.threads, "-j2", "-T%d" % args.duration,
                              "-f", script] + pgvars + ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                                                        "mqsync"], capture_output=True, text=True)
        if pgb.returncode != 0 or re.search(r"^number of failed transactions: [1-9]", pgb.stdout, re.M):
            raise RuntimeError("pgbench -M %s failed:\n%s%s" % (mode, pgb.stdout, pgb.stderr))
        tps[mode] = rate(pgb.stdout, r"^tps = ([\d.]+)")
    sql_tps = tps["prepared"]
    if http_rps != http_rps or sql_tps != sql_tps:
        print(wrk.stdout, wrk.stderr, pgb.stdout, pgb.stderr)
    report.append("sync, 100-message page: mqsyncd %.0f req/s (wrk -c%d, p50 %s, p99 %s); pgbench -c%d, same 3 "
                  "statements: %.0f tx/s prepared (ratio %.2f), %.0f tx/s unprepared (ratio %.2f)"
                  % (http_rps, args.connections, p50.group(1) if p50 else "?", p99.group(1) if p99 else "?",
                     args.threads, sql_tps, http_rps / sql_tps, tps["extended"], http_rps / tps["extended"]))


def bench_catchup(h, pg, sd, report, groups=100, per_group=1000):
    tok = h.user_add("offline")
    h.user_add("busy")
    pg.psql("INSERT INTO groups (id) SELECT 'cg' || g FROM generate_series(1, %d) g;"
            "INSERT INTO memberships (group_id, user_id) SELECT 'cg' || g, u FROM generate_series(1, %d) g, "
            "(VALUES ('offline'), ('busy')) v(u);"
            "INSERT INTO messages (group_id, seq, sender, payload) SELECT 'cg' || g, s, 'busy', "
            "convert_to('backlog message ' || s || ' in group ' || g, 'UTF8') "
            "FROM generate_series(1, %d) g, generate_series(1, %d) s;"
            "UPDATE groups SET last_seq = %d WHERE id LIKE 'cg%%'" % (groups, groups, groups, per_group, per_group))
    pg.psql("VACUUM ANALYZE messages")
    pg.psql("VACUUM ANALYZE memberships")
    c = Client(sd.port, tok)
    got = pages = 0
    seen = set()
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
            seen.add((m["group"], m["seq"]))
        c.call("POST", "/messages/ack", {"acks": [{"group": g, "seq": s} for g, s in last.items()]})
    took = time.monotonic() - t0
    total = groups * per_group
    if got != total or len(seen) != total:
        raise RuntimeError("catch-up: received %d (%d distinct) of %d messages" % (got, len(seen), total))
    report.append("catch-up: %d messages in %d groups by sync (limit 1000) + ack: %.2f s "
                  "(%d pages, %.0f messages/s), each exactly once" % (total, groups, took, pages, got / took))


def bench_wake(h, pg, sd, report, runs=100, n=500):
    tr = h.user_add("sleeper")
    h.user_add("waker")
    pg.psql("INSERT INTO groups (id) VALUES ('wake');"
            "INSERT INTO memberships (group_id, user_id) VALUES ('wake', 'sleeper'), ('wake', 'waker')")
    db = pg.connect()
    lat = []
    c = Client(sd.port, tr)
    for i in range(runs):
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
        if [m["payload"] for m in res["b"]["messages"]] != ["ping %d" % i]:
            raise RuntimeError("woken poll %d got %s" % (i, res["b"]["messages"]))
        lat.append(res["t"] - committed)
        c.call("POST", "/messages/ack", {"ids": [res["b"]["messages"][0]["id"]]})
    lat.sort()
    report.append("long-poll wake (commit to response, %d runs): median %.2f ms, p99 %.2f ms"
                  % (runs, statistics.median(lat) * 1000, lat[max(0, int(runs * 0.99) - 1)] * 1000))

    # n held at once (one user, n devices), all woken by one commit.
    done, missed = [], []
    lock = threading.Lock()
    s, b, _ = sd.request("GET", "/messages/sync", token=tr)
    tok = b["next"]

    def held():
        cc = Client(sd.port, tr)
        b = cc.call("GET", "/messages/sync?wait=30&after=" + tok)
        with lock:
            done.append(time.monotonic())
            if [m["payload"] for m in b["messages"]] != ["to all devices"]:
                missed.append(b["messages"])
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
    if missed or len(done) != n:
        raise RuntimeError("%d of %d held polls answered, %d without the message" % (len(done), n, len(missed)))
    report.append("%d held long-polls (pool in use while held: %s): all answered %.0f ms after one commit"
                  % (n, in_use, (max(done) - committed) * 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="2 s runs, small backlog: checks the benchmark runs")
    args = ap.parse_args()
    scale = {"groups": 10, "per_group": 100, "runs": 10, "n": 50} if args.quick else {}
    if args.quick:
        args.duration = 2
    report = []
    with harness.Harness("syncd-bench") as h:
        pg = h.postgres()
        sd = h.syncd(threads=args.threads)
        bench_throughput(h, pg, sd, args, report)
        bench_catchup(h, pg, sd, report, **{k: v for k, v in scale.items() if k in ("groups", "per_group")})
        bench_wake(h, pg, sd, report, **{k: v for k, v in scale.items() if k in ("runs", "n")})
    print("mqsyncd benchmark (%d cores, mqsyncd --threads %d, PostgreSQL 15 fsync off):" % (os.cpu_count(),
                                                                                           args.threads))
    for line in report:
        print("  " + line)
    print("  no failed request, no lost message")


if __name__ == "__main__":
    main()

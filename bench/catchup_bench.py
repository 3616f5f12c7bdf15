#!/usr/bin/python3
"""catchup_bench: a device offline for a backlog catches up over MQTT (users/{uid}/sync, pages of
1,000, SPEC 3.6) vs over HTTP (GET /messages/sync?limit=1000), same backlog, in one run (issue 8).

Starts a throwaway PostgreSQL, mosquitto with the plugin (broker defaults: max_inflight_messages 20,
max_queued_messages 1000, so a page must fit the client's queue) and mqsyncd. Inserts BACKLOG
messages of 100 bytes into one group, then for each of REPS rounds times a full catch-up of the
backlog, MQTT (docs/examples/catchup_paho.py, the documented client) and HTTP (urllib, following
`next`) alternating. Pass condition: each catch-up returns every seq 1..BACKLOG exactly once and in
order (exit 1 otherwise). Prints a markdown table (msgs/s per run and the median of each).
--quick: 5,000 messages, one round (a smoke test of the benchmark, not figures).

Run after building: /usr/bin/python3 bench/catchup_bench.py [--backlog N] [--reps R] [--quick]
Everything listens on 127.0.0.1 on free ports and is stopped by PID at the end.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "docs", "examples"))
import harness  # noqa: E402
import catchup_paho  # noqa: E402

GROUP = "bench"
START = "AQ"  # a token that mentions no group: every group from the member's join point
LOGS = "\n".join(["log_type none", "log_type error", "log_type warning", "log_type notice"])  # not the harness's "all"


def check(seqs, n, how):
    if seqs != list(range(1, n + 1)):
        missing = len(set(range(1, n + 1)) - set(seqs))
        raise RuntimeError("%s catch-up: got %d messages (%d distinct, %d missing), not 1..%d in order" % (
            how, len(seqs), len(set(seqs)), missing, n))


def mqtt_round(port, tok, n):
    c = catchup_paho.CatchUp("127.0.0.1", port, "dev", tok)
    try:
        seqs, pages, after = [], 0, START
        t0 = time.monotonic()
        while True:
            msgs, ev = c.page(after=after, limit=1000, timeout=60)
            pages += 1
            seqs += [m["seq"] for m in msgs]
            after = ev["next"]
            if not ev["has_more"]:
                break
        dt = time.monotonic() - t0
    finally:
        c.close()
    check(seqs, n, "MQTT")
    return dt, pages


def c_round(exe, port, tok, n):
    """docs/examples/catchup_mosquitto.c (libmosquitto), from the join point (token "AQ": no group
    mentioned), so its receipts at the end do not shorten the next rounds (they all pass a token)."""
    t0 = time.monotonic()
    r = subprocess.run([exe, "127.0.0.1", str(port), "dev", tok, START], capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("C client failed: " + r.stderr[-2000:])
    lines = r.stdout.splitlines()[:-1]
    check([int(x.split()[1]) for x in lines], n, "MQTT (C)")
    return dt, (n + 999) // 1000


def http_round(port, tok, n):
    seqs, pages, after = [], 0, START
    t0 = time.monotonic()
    while True:
        url = "http://127.0.0.1:%d/messages/sync?limit=1000&after=%s" % (port, after)
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + tok})
        with urllib.request.urlopen(req, timeout=60) as r:
            page = json.loads(r.read())
        pages += 1
        seqs += [m["seq"] for m in page["messages"]]
        after = page["next"]
        if not page["has_more"]:
            break
    dt = time.monotonic() - t0
    check(seqs, n, "HTTP")
    return dt, pages


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backlog", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.backlog, a.reps = 5000, 1
    with harness.Harness("catchup-bench") as h:
        pg = h.postgres()
        tok = h.user_add("dev")
        h.user_add("sender")
        pg.psql("INSERT INTO groups (id, last_seq) VALUES ('%s', %d);"
                "INSERT INTO memberships (group_id, user_id) VALUES ('%s', 'dev'), ('%s', 'sender');"
                "INSERT INTO messages (group_id, seq, sender, payload) SELECT '%s', s, 'sender',"
                " convert_to(rpad(s::text, 100, '.'), 'UTF8') FROM generate_series(1, %d) s"
                % (GROUP, a.backlog, GROUP, GROUP, GROUP, a.backlog))
        m = h.mosquitto(extra_conf=LOGS).start()
        if not m.wait_log("mqsync: state loaded", 30):
            raise RuntimeError("plugin did not load its state")
        sd = h.syncd()
        runs = [("MQTT (paho)", mqtt_round, m.port), ("HTTP", http_round, sd.port)]
        exe = os.path.join(h.tmp, "catchup_c")
        if shutil.which("cc") and subprocess.run(
                ["cc", "-O2", "-o", exe, os.path.join(ROOT, "docs", "examples", "catchup_mosquitto.c"), "-lmosquitto",
                 "-ljansson"]).returncode == 0:
            runs.insert(1, ("MQTT (C)", lambda port, tok, n: c_round(exe, port, tok, n), m.port))
        rows = []
        for r in range(a.reps):
            for how, fn, port in runs:
                dt, pages = fn(port, tok, a.backlog)
                rows.append((how, r + 1, pages, dt, a.backlog / dt))
                sys.stderr.write("%s round %d: %d pages, %.2f s, %.0f msg/s\n" % (how, r + 1, pages, dt, a.backlog / dt))
        print("| catch-up of %d messages (100 B, pages of 1,000) | round | pages | seconds | msg/s |" % a.backlog)
        print("|---|---|---|---|---|")
        for how, r, pages, dt, rate in rows:
            print("| %s | %d | %d | %.2f | %.0f |" % (how, r, pages, dt, rate))
        for how, _, _ in runs:
            print("| **%s median** | | | | **%.0f** |" % (how, statistics.median(x[4] for x in rows if x[0] == how)))
        print("\nEvery catch-up returned seq 1..%d exactly once, in order (broker defaults: max_inflight_messages "
              "20, max_queued_messages 1000)." % a.backlog)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        sys.stderr.write("catchup_bench: FAILED: %s\n" % e)
        sys.exit(1)

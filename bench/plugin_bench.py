#!/usr/bin/python3
"""plugin_bench: bare Mosquitto vs Mosquitto with mqsync_plugin.so, in one run (issue 3, docs/PERFORMANCE.md).

Starts a throwaway PostgreSQL (fsync on, synchronous_commit on), a bare broker and a plugin broker with
identical listener settings, then for each of REPS rounds runs bench/mqbench against each broker:
throughput (QoS 1, 100-byte payloads, bounded in-flight window) and latency paced at 5,000 msg/s.
Bare and plugin runs alternate so background load on the machine hits both alike. The throughput
ratio is taken per round (plugin run / the bare run of the same round) and reported as every pair
and the median of the pairs, never as a ratio of medians. Latency is measured from each message's
scheduled send slot (mqbench), and the number of sends later than 1 ms after their slot is printed.
Prints a markdown table, plus per-run JSON lines on stderr with --verbose.

Pass condition: zero loss. Any lost message (bare or plugin: the brokers run Mosquitto's default
queue limits, so a subscriber that falls too far behind loses messages), duplicate or refusal fails
the benchmark (exit 1; loss is reported per run at the end), and after every plugin run the
database must hold exactly the messages published so far for the group, each once, with seq
gapless from 1.
--quick: one short round of each (a smoke test of the benchmark itself, not figures).

Run after building: /usr/bin/python3 bench/plugin_bench.py   (MQSYNC_BUILD_DIR picks the build dir,
default build/). Everything listens on 127.0.0.1 on free ports and is stopped by PID at the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

MQBENCH = os.path.join(harness.BUILD_DIR, "bench", "mqbench")
TOPIC = "groups/bench/messages"
GROUP = "bench"

# Same for both brokers: production-like logging (not the harness's per-packet "all") and
# Mosquitto's default queue limits (max_inflight_messages 20, max_queued_messages 1000), under which
# the broker drops what a subscriber cannot take: any such drop fails the run (issue 8, SPEC 3.2).
# --unlimited-queues sets both to 0 (no limit) for both brokers.
COMMON_CONF = "\n".join(["log_type none", "log_type error", "log_type warning", "log_type notice",
                         "log_type information"])
UNLIMITED_CONF = "\nmax_queued_messages 0\nmax_inflight_messages 0"


def cpu_ticks(pid):
    """{tid: utime+stime ticks} for every thread of pid."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


def children_ticks(ppid):
    """utime+stime ticks of ppid and its direct children (PostgreSQL backends)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) == ppid or int(fields[1]) == ppid:
            total += int(fields[11]) + int(fields[12])
    return total


class Broker:
    def __init__(self, h, name, plugin, creds, unlimited=False):
        extra = COMMON_CONF + (UNLIMITED_CONF if unlimited else "") + ("" if plugin else "\nallow_anonymous true")
        self.m = h.mosquitto(name=name, plugin=plugin, extra_conf=extra).start()
        self.name = name
        self.plugin = plugin
        self.creds = creds  # (pub_user, pub_pw, sub_user, sub_pw) or None

    def run(self, h, mode, count, warmup, rate, window, timeout):
        """Runs mqbench once; returns (result dict, cpu dict). Raises on a failed run."""
        argv = [MQBENCH, "--port", str(self.m.port), "--topic", TOPIC, "--mode", mode, "--count", str(count),
                "--warmup", str(warmup), "--rate", str(rate), "--qos", "1", "--window", str(window),
                "--payload", "100", "--timeout", str(timeout)]
        if self.creds:
            argv += ["--user", self.creds[0], "--password", self.creds[1],
                     "--sub-user", self.creds[2], "--sub-password", self.creds[3]]
        pid = self.m.proc.pid
        b0, p0, t0 = cpu_ticks(pid), children_ticks(h.pg.proc.pid), time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
        b1, p1, t1 = cpu_ticks(pid), children_ticks(h.pg.proc.pid), time.monotonic()
        if not r.stdout.strip():
            raise RuntimeError("mqbench failed against %s (rc %d): %s %s\n%s" % (
                self.name, r.returncode, r.stdout, r.stderr, self.m.log()[-3000:]))
        res = json.loads(r.stdout.strip().splitlines()[-1])
        if res["duplicates"] or res["refused"] or res["received"] > count:
            raise RuntimeError("duplicates or refusals against %s: %s" % (self.name, r.stdout))
        # Loss fails the benchmark too, but at the end, so that every run is reported.
        res["lost"] = count - res["received"]
        hz = os.sysconf("SC_CLK_TCK")
        wall = t1 - t0
        main = (b1.get(pid, 0) - b0.get(pid, 0)) / hz
        other = sum(v - b0.get(t, 0) for t, v in b1.items() if t != pid) / hz
        cpu = {"broker_thread": main / wall, "plugin_threads": other / wall, "postgres": (p1 - p0) / hz / wall}
        return res, cpu


def verify_db(pg, expected):
    """The group holds exactly `expected` messages, each once, seq 1..expected. Returns batch stats."""
    row = pg.psql("SELECT count(*), count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0),"
                  " count(DISTINCT payload), (SELECT last_seq FROM groups WHERE id = '%s')"
                  " FROM messages WHERE group_id = '%s'" % (GROUP, GROUP)).split("|")
    n, dseq, lo, hi, dorigin, last = (int(x) for x in row)
    ok = n == expected and dseq == expected and dorigin == expected and hi == expected and last == expected and (
        expected == 0 or lo == 1)
    if not ok:
        raise RuntimeError("database check failed: expected %d messages seq 1..%d; found count=%d distinct_seq=%d "
                           "min=%d max=%d distinct_payload=%d last_seq=%d" % (expected, expected, n, dseq, lo, hi,
                                                                             dorigin, last))


def batch_stats(pg, lo_seq, hi_seq):
    """Writer transactions for seq lo..hi: now() is the transaction start, so rows of one batch share
    created_at. Returns (transactions, mean batch, max batch)."""
    out = pg.psql("SELECT count(*), round(avg(n), 1), max(n) FROM (SELECT count(*) AS n FROM messages"
                  " WHERE group_id = '%s' AND seq BETWEEN %d AND %d GROUP BY created_at) b" % (GROUP, lo_seq, hi_seq))
    t, mean, mx = out.split("|")
    return int(t), float(mean or 0), int(mx or 0)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--count", type=int, default=100000, help="throughput run: messages (after warm-up)")
    ap.add_argument("--latency-count", type=int, default=20000, help="latency run: messages (4 s at 5,000/s)")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--window", type=int, default=500, help="publisher in-flight window (QoS 1)")
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--unlimited-queues", action="store_true",
                    help="max_queued_messages 0 and max_inflight_messages 0 on both brokers (default: Mosquitto's)")
    ap.add_argument("--verbose", action="store_true", help="per-run JSON on stderr")
    ap.add_argument("--quick", action="store_true", help="1 round, 5,000 + 2,000 messages: checks the benchmark runs")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.count, args.latency_count, args.warmup = 1, 5000, 2000, 200
    for path in (MQBENCH, harness.PLUGIN, harness.MQSYNCD):
        if not os.path.exists(path):
            sys.exit("missing %s: build first (cmake --build %s) or set MQSYNC_BUILD_DIR" % (path, harness.BUILD_DIR))

    results = {("bare", "throughput"): [], ("bare", "latency"): [], ("plugin", "throughput"): [],
               ("plugin", "latency"): []}
    cpus = {k: [] for k in results}
    batches = {"throughput": [], "latency": []}
    t_start = time.monotonic()
    with harness.Harness("plugin-bench") as h:
        pg = h.postgres(fsync=True)
        tok = {u: h.user_add(u) for u in ("benchpub", "benchsub")}
        pg.psql("INSERT INTO groups (id) VALUES ('%s');"
                "INSERT INTO memberships (group_id, user_id) VALUES ('%s', 'benchpub'), ('%s', 'benchsub')"
                % (GROUP, GROUP, GROUP))
        bare = Broker(h, "bare", False, None, args.unlimited_queues)
        plug = Broker(h, "plugin", True, ("benchpub", tok["benchpub"], "benchsub", tok["benchsub"]),
                      args.unlimited_queues)
        stored = 0
        for rep in range(args.reps):
            for mode, count in (("throughput", args.count), ("latency", args.latency_count)):
                for b in (bare, plug) if rep % 2 == 0 else (plug, bare):
                    res, cpu = b.run(h, mode, count, args.warmup, args.rate, args.window, timeout=90)
                    results[(b.name, mode)].append(res)
                    cpus[(b.name, mode)].append(cpu)
                    if b.plugin:
                        first = stored + args.warmup + 1
                        stored += res["published"]
                        verify_db(pg, stored)
                        batches[mode].append(batch_stats(pg, first, stored))
                    if args.verbose:
                        sys.stderr.write("%s %s rep %d: %s cpu %s\n" % (b.name, mode, rep, json.dumps(res),
                                                                       json.dumps(cpu)))
        load = os.getloadavg()
    elapsed = time.monotonic() - t_start

    def tp(name):
        return med([r["msgs_per_s"] for r in results[(name, "throughput")]])

    def lat(name, mode, q):
        return med([r["lat_us"][q] for r in results[(name, mode)]]) / 1000.0

    def cpu(name, mode, k):
        return med([c[k] for c in cpus[(name, mode)]]) * 100

    # Paired per round: both runs of a round saw the same background load.
    pairs = [p["msgs_per_s"] / b["msgs_per_s"] for p, b in zip(results[("plugin", "throughput")],
                                                               results[("bare", "throughput")])]
    ratio = med(pairs)
    p99 = lat("plugin", "latency", "p99")
    print("mqsync plugin benchmark: QoS 1, 100-byte payloads, 1 publisher (window %d), 1 subscriber, "
          "PostgreSQL fsync on; median of %d runs; latency from the scheduled send slot; %d CPUs, "
          "load average at end %.2f; %.0f s" % (args.window, args.reps, os.cpu_count(), load[0], elapsed))
    print()
    print("| broker | throughput msg/s | latency @%d/s p50 ms | p90 ms | p99 ms | max ms | late sends (>1 ms) "
          "| broker thread CPU (tp) | plugin threads CPU (tp) | PostgreSQL CPU (tp) |" % args.rate)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("bare", "plugin"):
        late = [r.get("late_sends", 0) for r in results[(name, "latency")]]
        print("| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %s of %d | %.0f%% | %.0f%% | %.0f%% |" % (
            name, tp(name), lat(name, "latency", "p50"), lat(name, "latency", "p90"), lat(name, "latency", "p99"),
            lat(name, "latency", "max"), " / ".join(str(x) for x in late), args.latency_count,
            cpu(name, "throughput", "broker_thread"), cpu(name, "throughput", "plugin_threads"),
            cpu(name, "throughput", "postgres")))
    print()
    print("| ratio plugin/bare throughput (median of per-round pairs) | plugin p99 @%d/s | writer batches "
          "(tp: mean / max msgs) | writer batches (latency: mean / max) |" % args.rate)
    print("|---:|---:|---:|---:|")
    bt = batches["throughput"]
    bl = batches["latency"]
    print("| %.2f× (target ≥ 0.85) %s | %.2f ms (target ≤ 3) %s | %.0f / %d | %.1f / %d |" % (
        ratio, "met" if ratio >= 0.85 else "MISSED", p99, "met" if p99 <= 3 else "MISSED",
        med([b[1] for b in bt]), max(b[2] for b in bt), med([b[1] for b in bl]), max(b[2] for b in bl)))
    print()
    print("per round: throughput bare %s; plugin %s; ratio %s; p99 ms bare %s; plugin %s" % (
        [r["msgs_per_s"] for r in results[("bare", "throughput")]],
        [r["msgs_per_s"] for r in results[("plugin", "throughput")]],
        ["%.2f" % x for x in pairs],
        [round(r["lat_us"]["p99"] / 1000, 2) for r in results[("bare", "latency")]],
        [round(r["lat_us"]["p99"] / 1000, 2) for r in results[("plugin", "latency")]]))
    lost = {k: [r["lost"] for r in v] for k, v in results.items()}
    print("lost live (per run; the subscriber's queue overflowed, Mosquitto dropped them): %s" % "; ".join(
        "%s %s %s" % (k[0], k[1], v) for k, v in sorted(lost.items())))
    print("database check: %d messages stored once each, seq 1..%d gapless" % (stored, stored))
    if any(sum(v) for v in lost.values()):
        print("FAILED: live loss (pass condition: zero loss, bare and plugin)")
        return 1
    print("zero loss: every run received each message exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())

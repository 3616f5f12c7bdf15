"""harness: real PostgreSQL, mosquitto and mqsyncd processes for integration tests.

Every server binds 127.0.0.1 on a free port, lives in a fresh temp dir, and is stopped by PID when
the Harness closes: on success, on an exception, on SIGTERM/SIGINT (converted to SystemExit), and,
if this Python process is killed outright, by the kernel (PR_SET_PDEATHSIG on every child).

A server that exits by itself with a non-zero status, dies of a signal the test did not send, needs
SIGKILL to stop, or leaves a sanitizer report in its log fails the test (Harness.close raises).
The logs of a failed test are copied to $MQSYNC_BUILD_DIR/test-logs/<script>/<harness name>/.

Run with Debian's /usr/bin/python3 (python3-paho-mqtt, python3-psycopg2).
"""
import ctypes
import errno
import fcntl
import glob
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BUILD_DIR = os.environ.get("MQSYNC_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
BUILD_DIR = os.path.abspath(BUILD_DIR)
PLUGIN = os.path.join(BUILD_DIR, "plugin", "mqsync_plugin.so")
MQSYNCD = os.path.join(BUILD_DIR, "syncd", "mqsyncd")
MOSQUITTO = os.environ.get("MQSYNC_MOSQUITTO", "/usr/sbin/mosquitto")

SANITIZE = os.environ.get("MQSYNC_SANITIZE") == "1"
# Reports that fail the test that produced them (checked in every server's log at teardown).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")
# How long a server may take to stop after its graceful signal (LeakSanitizer's exit scan included)
# before the harness SIGKILLs it, which fails the test.
STOP_TIMEOUT = float(os.environ.get("MQSYNC_STOP_TIMEOUT", "30"))
# abort_on_error: a report ends the process at once, so it cannot be missed or scrolled away.
SANITIZER_ENV = {"ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}

def run_cli(argv, env=None, **kw):
    """Runs a short-lived mqsyncd command (migrate, user add, --help...) as subprocess.run does, with
    the sanitizer settings of this pass; fails (AssertionError) if it died of a signal or its stderr
    holds a sanitizer report, which a plain subprocess.run would let pass."""
    full_env = dict(os.environ if env is None else env, **(SANITIZER_ENV if SANITIZE else {}))
    r = subprocess.run(argv, capture_output=True, text=True, env=full_env, **kw)
    if r.returncode < 0 or any(m in r.stderr for m in SANITIZER_MARKERS):
        raise AssertionError("%s: exit %d, stderr:\n%s" % (" ".join(argv[:3]), r.returncode, r.stderr))
    return r


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _pg_bindir():
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                           check=True).stdout.strip()
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres")):
            return d
    except (OSError, subprocess.CalledProcessError):
        pass
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "postgres")):
            return d
    raise RuntimeError("no PostgreSQL server binaries found (apt-get install postgresql)")


def _port_range():
    """Ports to hand out: below the kernel's ephemeral range, so no client socket of this machine
    takes one between the moment it is chosen and the moment the server binds it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if lo > 12000:
        return 10000, lo - 1
    return hi + 1, 65000


PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "mqsync-port-locks")
# Lock files of the ports this process handed out, held open (flock) until the process exits: no
# other test process on the machine (ctest -j2) picks the same port, even while a server is down
# between a stop and a restart on "its" port.
_held_ports = {}


def free_port():
    """A port on 127.0.0.1 that is free and reserved for this process (see PORT_LOCK_DIR)."""
    lo, hi = _port_range()
    os.makedirs(PORT_LOCK_DIR, mode=0o1777, exist_ok=True)
    for _ in range(500):
        port = random.randint(lo, hi)
        if port in _held_ports:
            continue
        fd = os.open(os.path.join(PORT_LOCK_DIR, "%d.lock" % port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                os.close(fd)
                continue
        _held_ports[port] = fd
        return port
    raise RuntimeError("no free port")


def wait_for(fn, timeout=60.0, step=0.05):
    """Polls fn until it returns something true; returns that, or fn's last value after timeout.
    Generous default: it returns as soon as the condition holds; the bound only matters on a slow
    run (the sanitizer pass on a loaded 2-core machine), where a tight one turns slowness into a flake."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def wait_port(port, proc=None, timeout=15.0):
    """Waits until 127.0.0.1:port accepts a connection. False if proc exits first or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _preexec(uid=None, gid=None):
    def fn():
        os.setsid()
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # After the credential change (which clears it): die with the harness.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return fn


def describe_status(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


class Proc:
    """A server process with its log file; stop() is idempotent. Every way it ended that a test
    did not ask for is recorded in .problems (checked by Harness.close)."""

    def __init__(self, name, argv, log_path, env=None, uid=None, gid=None, stop_signal=signal.SIGTERM):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.uid = uid
        self.gid = gid
        self.stop_signal = stop_signal
        self.popen = None
        self.sent = set()  # signals the harness or the test sent to the current run
        self.may_fail = False  # the current run is expected to exit non-zero by itself (not by signal)
        self.problems = []
        self._checked = False

    def start(self, may_fail=False):
        self._check()  # a previous run of this process that ended by itself
        log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env,
                                          preexec_fn=_preexec(self.uid, self.gid))
        finally:
            log.close()
        self.sent = set()
        self.may_fail = may_fail
        self._checked = False
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        """Sends sig to the running process (recorded: a death by it is not a problem)."""
        if self.running():
            self.sent.add(sig)
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def _check(self):
        """Records how the last run ended, once, if it has ended."""
        if self.popen is None or self._checked or self.popen.poll() is None:
            return
        self._checked = True
        rc = self.popen.returncode
        what = "%s (pid %d): %s" % (self.name, self.popen.pid, describe_status(rc))
        if rc < 0 and -rc not in self.sent:
            self.problems.append(what + ", a signal the test did not send")
        elif rc > 0 and not self.may_fail:
            self.problems.append(what)

    def stop(self, sig=None, timeout=None):
        """Sends sig (default: the graceful one), waits, then SIGKILLs (recorded as a problem unless
        sig was SIGKILL). Returns the exit code (negative: the signal)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(sig or self.stop_signal)
            try:
                self.popen.wait(STOP_TIMEOUT if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.problems.append("%s (pid %d) did not stop within %.0f s of %s: SIGKILLed" % (
                    self.name, self.popen.pid, STOP_TIMEOUT if timeout is None else timeout,
                    signal.Signals(sig or self.stop_signal).name))
                self.signal(signal.SIGKILL)
                self.popen.wait()
        rc = self.popen.wait()
        self._check()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Postgres:
    """A throwaway cluster: initdb into dir, -A trust, fsync off unless fsync=True."""

    def __init__(self, harness, fsync=False):
        self.h = harness
        self.dir = os.path.join(harness.tmp, "pg")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.fsync = fsync
        self.proc = None
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        bindir = _pg_bindir()
        self.postgres_bin = os.path.join(bindir, "postgres")
        os.makedirs(self.dir)
        if self.uid is not None:
            os.chown(self.dir, self.uid, self.gid)
        r = subprocess.run([os.path.join(bindir, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                           capture_output=True, text=True, preexec_fn=_preexec(self.uid, self.gid))
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stdout + r.stderr)

    def start(self):
        argv = [self.postgres_bin, "-D", self.data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=" + self.dir, "-c", "fsync=" + ("on" if self.fsync else "off"),
                "-c", "synchronous_commit=" + ("on" if self.fsync else "off"),
                "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=warning"]
        self.proc = Proc("postgres", argv, os.path.join(self.h.tmp, "postgres.log"), uid=self.uid, gid=self.gid,
                         stop_signal=signal.SIGINT).start()
        self.h.track(self.proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise RuntimeError("postgres exited:\n" + self.proc.log())
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                                "-Atc", "SELECT 1"], capture_output=True, text=True)
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError("postgres did not come up:\n" + self.proc.log())

    def stop(self):
        if self.proc:
            self.proc.stop()

    def dsn(self, db="mqsync"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)

    def psql(self, sql, db="mqsync"):
        """Runs sql through psql; returns stdout (unaligned, tuples only). Raises on error."""
        r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-Atc", sql], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: " + r.stderr)
        return r.stdout.strip()

    def connect(self, db="mqsync"):
        import psycopg2
        conn = psycopg2.connect(self.dsn(db))
        conn.autocommit = True
        return conn

    def create_db(self, db="mqsync"):
        self.psql("CREATE DATABASE %s" % db, db="postgres")


class Mosquitto:
    """/usr/sbin/mosquitto with the plugin loaded and a generated config."""

    def __init__(self, harness, conninfo, name="mosquitto", options=None, extra_conf="", plugin=True):
        self.h = harness
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(harness.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        opts = {"conninfo": conninfo, "node": name, "spool_dir": self.spool, "other_topics": "allow",
                "wake_address": "127.0.0.1:%d" % self.port}
        opts.update(options or {})
        self.log_path = os.path.join(harness.tmp, name + ".log")
        # log_dest file, not stdout: stdout to a file is block-buffered and shows up late.
        lines = ["per_listener_settings false", "user root", "allow_anonymous false",
                 "persistence false", "log_dest file " + self.log_path, "log_type all", "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S",
                 "listener %d 127.0.0.1" % self.port, "set_tcp_nodelay true"]
        if plugin:
            lines.append("plugin " + PLUGIN)
            for k, v in opts.items():
                if v is not None:
                    lines.append("plugin_opt_%s %s" % (k, v))
        lines.append(extra_conf)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines).replace("%%", "%") + "\n")
        env = None
        if SANITIZE:
            # Leak checking on: at exit, anything the plugin failed to free is reported (2.0.11 itself
            # frees everything, so there is nothing to suppress).
            env = dict(os.environ, LD_PRELOAD=os.environ["MQSYNC_ASAN_PRELOAD"], **SANITIZER_ENV)
        self.proc = Proc(name, [MOSQUITTO, "-c", self.conf], self.log_path, env=env)

    def start(self, expect_fail=False, timeout=15.0):
        """Starts (or restarts, after stop/kill9) the broker on the same port, config and spool."""
        if SANITIZE:
            # mosquitto itself leaks its configuration when it exits on a plugin init failure; that
            # path is not ours to judge. Normal runs keep leak checking on.
            self.proc.env["ASAN_OPTIONS"] = "abort_on_error=1:detect_leaks=%d" % (0 if expect_fail else 1)
        self.proc.start(may_fail=expect_fail)
        self.h.track(self.proc)
        if expect_fail:
            try:
                return self.proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError("mosquitto started although it should have refused:\n" + self.proc.log())
        if not wait_port(self.port, self.proc.popen, timeout):
            raise RuntimeError("mosquitto did not come up:\n" + self.proc.log())
        return self

    def log(self):
        return self.proc.log()

    def wait_log(self, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.proc.log():
                return True
            time.sleep(0.05)
        return False


class Syncd:
    """build/syncd/mqsyncd serve on a free port."""

    def __init__(self, harness, conninfo, threads=4, admin_token=None):
        self.h = harness
        self.port = free_port()
        self.admin_token = admin_token or "admin-" + os.urandom(16).hex()
        env = dict(os.environ, MQSYNC_ADMIN_TOKEN=self.admin_token, **(SANITIZER_ENV if SANITIZE else {}))
        self.proc = Proc("mqsyncd", [MQSYNCD, "serve", "--listen", "127.0.0.1:%d" % self.port, "--db", conninfo,
                                     "--threads", str(threads)], os.path.join(harness.tmp, "mqsyncd.log"), env=env)

    def start(self):
        self.proc.start()
        self.h.track(self.proc)
        if not wait_port(self.port, self.proc.popen):
            raise RuntimeError("mqsyncd did not come up:\n" + self.proc.log())
        return self

    def request(self, method, path, body=None, token=None, headers=None, raw=None, timeout=70):
        """Returns (status, parsed JSON or text, headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, text, hdrs = resp.status, resp.read().decode("utf-8", "replace"), resp.headers
        except urllib.error.HTTPError as e:
            status, text, hdrs = e.code, e.read().decode("utf-8", "replace"), e.headers
        try:
            return status, json.loads(text), hdrs
        except ValueError:
            return status, text, hdrs


class Harness:
    """Owns a temp dir and every process started through it. Use as a context manager."""

    def __init__(self, name="test"):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="mqsync-%s-" % name)
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.pg = None
        self._old_handlers = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        raise SystemExit(128 + signum)

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        self.close(keep=failed)
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        return False

    def track(self, proc):
        if proc not in self.procs:
            self.procs.append(proc)
        pidfile = os.path.join(self.tmp, "pids")
        with open(pidfile, "a") as f:
            f.write("%s %d\n" % (proc.name, proc.pid))

    def sanitizer_reports(self):
        """Names of the processes whose logs hold a sanitizer report."""
        return [p.name for p in self.procs if any(m in p.log() for m in SANITIZER_MARKERS)]

    def problems(self):
        """Every way a server ended that the test did not ask for, and every sanitizer report."""
        out = [x for p in self.procs for x in p.problems]
        out += ["sanitizer report in the log of %s" % n for n in self.sanitizer_reports()]
        return out

    def logs_dir(self):
        """Where the logs of a failed test are kept: in the build tree of the pass that ran it."""
        script = os.path.splitext(os.path.basename(sys.argv[0] or "python"))[0]
        return os.path.join(BUILD_DIR, "test-logs", script, self.name)

    def keep_logs(self):
        """Copies the temp dir (without PostgreSQL's data directory) to logs_dir(); returns it."""
        dest = self.logs_dir()
        shutil.rmtree(dest, ignore_errors=True)
        ignore = lambda d, names: [n for n in names if os.path.join(d, n) == os.path.join(self.tmp, "pg", "data")]
        try:
            shutil.copytree(self.tmp, dest, ignore=ignore, symlinks=True)
        except (OSError, shutil.Error) as e:
            sys.stderr.write("harness: copying logs to %s: %s\n" % (dest, e))
        return dest

    def close(self, keep=False):
        # Stop in reverse start order: clients of the database before the database.
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                p.problems.append("stopping %s: %s" % (p.name, e))
        problems = self.problems()
        if keep or problems:
            dest = self.keep_logs()
            sys.stderr.write("harness: logs of %s kept in %s\n" % (self.name, dest))
            for p in self.procs:
                tail = p.log()[-4000:]
                if tail:
                    sys.stderr.write("---- %s (last lines) ----\n%s\n" % (p.name, tail))
        if os.environ.get("MQSYNC_KEEP_TMP"):
            sys.stderr.write("harness: temp dir kept in %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("harness %s: server failure: %s (logs in %s)" % (
                self.name, "; ".join(problems), self.logs_dir()))

    # -- the usual stack -------------------------------------------------------------------------

    def postgres(self, fsync=False, db="mqsync", migrate=True):
        self.pg = Postgres(self, fsync=fsync).start()
        self.pg.create_db(db)
        if migrate:
            self.migrate(self.pg.dsn(db))
        return self.pg

    def migrate(self, conninfo):
        r = run_cli([MQSYNCD, "migrate", "--db", conninfo])
        if r.returncode != 0:
            raise RuntimeError("mqsyncd migrate failed: " + r.stderr)
        return r

    def user_add(self, uid, admin=False, conninfo=None):
        argv = [MQSYNCD, "user", "add", uid, "--db", conninfo or self.pg.dsn()]
        if admin:
            argv.append("--admin")
        r = run_cli(argv)
        if r.returncode != 0:
            raise RuntimeError("user add failed: " + r.stderr)
        return r.stdout.strip()

    def mosquitto(self, **kw):
        kw.setdefault("conninfo", self.pg.dsn())
        return Mosquitto(self, **kw)

    def syncd(self, **kw):
        kw.setdefault("conninfo", self.pg.dsn())
        return Syncd(self, **kw).start()


class SharedServersTest(unittest.TestCase):
    """Base for test classes that share one Harness (cls.h) across their tests, each test using its
    own users and groups (or proving it changed nothing). tearDownClass closes the harness, keeping
    the logs when any test of the class failed."""

    any_failed = False

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            type(self).any_failed = True
        return out

    @classmethod
    def close_shared(cls):
        cls.h.__exit__(AssertionError if cls.any_failed else None, None, None)

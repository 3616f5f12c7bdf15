"""Compatibility (SPEC 9): every Mosquitto symbol the plugin needs is exported by every broker of
the matrix (Debian 12's 2.0.11, upstream 2.0.21 and 2.1.2): `nm -u` of the built plugin against
`nm -D --defined-only` of each broker. Upstream 2.0.x exports only the names in its
src/linker.syms, so a plugin that links anything else fails to load there ("undefined symbol").

Brokers: MQSYNC_COMPAT_BROKERS ("VERSION=PATH;..."; tests/integration/CMakeLists.txt sets it); when
unset, /usr/sbin/mosquitto plus whatever ../shared/tools/mosquitto-build VERSION builds."""
import os
import subprocess
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_SCRIPT = os.path.join(HERE, "..", "..", "..", "shared", "tools", "mosquitto-build")


def brokers():
    env = os.environ.get("MQSYNC_COMPAT_BROKERS")
    if env:
        return dict(item.split("=", 1) for item in env.split(";") if item)
    out = {"2.0.11": "/usr/sbin/mosquitto"}
    for v in ("2.0.21", "2.1.2"):
        if os.path.exists(BUILD_SCRIPT):
            r = subprocess.run([BUILD_SCRIPT, v], capture_output=True, text=True)
            if r.returncode == 0:
                out[v] = r.stdout.strip()
    return out


def symbols(argv):
    """Names from nm's output (without any @version suffix)."""
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


class CompatSymbolsTest(unittest.TestCase):
    def test_plugin_needs_only_what_every_broker_exports(self):
        needed = {s for s in symbols(["nm", "-u", harness.PLUGIN]) if s.startswith("mosquitto_")}
        self.assertIn("mosquitto_callback_register", needed)  # the nm call read the right file
        found = brokers()
        self.assertIn("2.0.11", found)
        for version, path in sorted(found.items()):
            with self.subTest(broker=version):
                self.assertTrue(os.path.exists(path), path)
                exported = symbols(["nm", "-D", "--defined-only", path])
                missing = sorted(needed - exported)
                self.assertEqual(missing, [], "the plugin needs symbols Mosquitto %s (%s) does not export: %s"
                                 % (version, path, ", ".join(missing)))


if __name__ == "__main__":
    unittest.main()

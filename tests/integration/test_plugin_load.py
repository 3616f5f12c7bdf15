"""The plugin loads into the real mosquitto, logs its version and options, and refuses bad ones."""
import unittest

import harness


class PluginLoadTest(unittest.TestCase):
    def test_loads_and_logs(self):
        with harness.Harness("pluginload") as h:
            h.postgres()
            m = h.mosquitto(options={"max_payload": "1000"}).start()
            self.assertTrue(m.wait_log("mqsync: plugin 0.1.0 starting"), m.log())
            self.assertIn("max_payload=1000", m.log())
            self.assertIn("node=mosquitto", m.log())
            self.assertNotIn("user=postgres", m.log(), "conninfo is not logged")
            self.assertTrue(m.wait_log("mqsync: state loaded: 0 users, 0 groups"), m.log())

    def test_bad_options_refuse_start(self):
        cases = [
            ({"bogus_key": "1"}, "plugin_opt_bogus_key: unknown option"),
            ({"max_payload": "-5"}, "plugin_opt_max_payload"),
            ({"max_payload": "12abc"}, "plugin_opt_max_payload"),
            ({"auth": "maybe"}, "plugin_opt_auth"),
            ({"envelope": "xml"}, "plugin_opt_envelope"),
            ({"other_topics": "sometimes"}, "plugin_opt_other_topics"),
            ({"conninfo": None}, "plugin_opt_conninfo: required"),
            ({"spool_dir": "relative/dir"}, "plugin_opt_spool_dir"),
            ({"node": "bad node!"}, "plugin_opt_node"),
            ({"wake_address": "localhost"}, "plugin_opt_wake_address"),
            ({"spool_max_bytes": "10"}, "plugin_opt_spool_max_bytes"),
        ]
        with harness.Harness("pluginbad") as h:
            h.postgres(migrate=False)
            for i, (opts, needle) in enumerate(cases):
                m = h.mosquitto(name="bad%d" % i, options=opts)
                rc = m.start(expect_fail=True)
                self.assertNotEqual(rc, 0, opts)
                self.assertIn(needle, m.log(), opts)


if __name__ == "__main__":
    unittest.main()

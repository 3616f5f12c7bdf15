/* nonls: a test-only LD_PRELOAD shim for the sanitizer pass. Preloading libasan into the
 * uninstrumented /usr/sbin/mosquitto leaves glibc's gettext lock (_nl_state_lock) with an
 * underflowed reader count (seen with a bare broker, no plugin loaded), so the first
 * bindtextdomain() - libpq calls it once, from the plugin's database threads - blocks forever.
 * This shim makes bindtextdomain a no-op: libpq's messages stay untranslated, nothing else
 * changes. Never used outside tests/integration with MQSYNC_SANITIZE=1. */
#include <stddef.h>

char *bindtextdomain(const char *domainname, const char *dirname)
{
	(void)domainname;
	return (char *)dirname;
}

/* The runtime built from a config snapshot: defaults agree across layers, and errors
   found after parsing (adapters, TLS files, key store) carry file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"
#include "adapter.h"
#include "gw_runtime.h"

static struct gw_runtime *load(const char *yaml, char *err, size_t errlen)
{
    struct conf_snapshot *snap = NULL;
    struct conf_error cerr;
    memset(&cerr, 0, sizeof(cerr));
    if (conf_snapshot_load_buffer("t.yaml", yaml, strlen(yaml), &snap, &cerr) != 0) {
        snprintf(err, errlen, "%s", cerr.msg);
        return NULL;
    }
    struct gw_runtime *rt = NULL;
    if (gw_runtime_new(snap, &rt, err, errlen) != 0)
        return NULL;
    return rt;
}

static void defaults_agree(void)
{
    /* conf/ and transport/ cannot include each other, so each states the documented
       defaults; this pins them together. */
    adapter_register_builtin();
    char err[512] = "";
    struct gw_runtime *rt = load("listen:\n  - address: \"127.0.0.1:1\"\n", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rt);
    struct tp_server_limits want;
    memset(&want, 0, sizeof(want)); /* padding too: compared with memcmp */
    tp_server_limits_default(&want);
    CU_ASSERT_EQUAL(memcmp(&rt->limits, &want, sizeof(want)), 0);
    CU_ASSERT_EQUAL(rt->cover_backend, -1);
    CU_ASSERT_PTR_NOT_NULL(rt->cover);
    gw_runtime_free(rt);
}

static void errors_have_lines(void)
{
    adapter_register_builtin();
    char err[512] = "";
    struct gw_runtime *rt = load("listen:\n"
                                 "  - address: \"127.0.0.1:1\"\n"
                                 "backends:\n"
                                 "  b:\n"
                                 "    adapter: carrier-pigeon\n",
                                 err, sizeof(err));
    CU_ASSERT_PTR_NULL(rt);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:5: unknown adapter"));
    rt = load("listen:\n"
              "  - address: \"127.0.0.1:1\"\n"
              "backends:\n"
              "  b:\n"
              "    adapter: http\n"
              "    url: http://127.0.0.1:9\n"
              "    colour: blue\n",
              err, sizeof(err));
    CU_ASSERT_PTR_NULL(rt);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:7:"));
    rt = load("listen:\n"
              "  - address: \"127.0.0.1:1\"\n"
              "    tls: {certificate: /nonexistent/c.pem, key: /nonexistent/k.pem}\n",
              err, sizeof(err));
    CU_ASSERT_PTR_NULL(rt);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:2:"));
    rt = load("listen:\n"
              "  - address: \"127.0.0.1:1\"\n"
              "sealed:\n"
              "  keys: /nonexistent-keys\n",
              err, sizeof(err));
    CU_ASSERT_PTR_NULL(rt);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:4: sealed.keys"));
}

/* Reload (SIGHUP): what a new runtime takes over from the running one. */

static char *sealed_yaml(const char *dir, const char *window, const char *cache,
                         const char *error_log)
{
    static char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "listen:\n  - address: \"127.0.0.1:1\"\n"
                     "error_log: {path: %s, level: info}\n"
                     "sealed:\n  keys: %s\n  replay_window: %s\n  replay_cache: %s\n",
                     error_log, dir, window, cache);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

static void reload_keeps_replay_cache(void)
{
    adapter_register_builtin();
    char tmpl[] = "/tmp/zaslon-rt-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CU_ASSERT_FATAL(dir != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/k1.key", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: "
          "3c168975674b2fa8e465970b79c8dcf09f1c741626480bd4c6162fc5b6a98e1a\n", f);
    fclose(f);
    CU_ASSERT_FATAL(chmod(path, 0600) == 0);
    char err[512] = "";
    struct gw_runtime *old = load(sealed_yaml(dir, "60s", "5000", "stderr"), err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    struct gw_runtime *same = load(sealed_yaml(dir, "60s", "5000", "stderr"), err, sizeof(err));
    struct gw_runtime *window = load(sealed_yaml(dir, "90s", "5000", "stderr"), err, sizeof(err));
    struct gw_runtime *size = load(sealed_yaml(dir, "60s", "9000", "stderr"), err, sizeof(err));
    struct gw_runtime *logs = load(sealed_yaml(dir, "60s", "5000", "/tmp/zaslon-rt.log"), err,
                                   sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(same);
    CU_ASSERT_PTR_NOT_NULL_FATAL(window);
    CU_ASSERT_PTR_NOT_NULL_FATAL(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(logs);
    /* An enc seen by the old generation is a replay for the new one. */
    const uint8_t enc[32] = {7, 7, 7};
    time_t now = time(NULL);
    CU_ASSERT_EQUAL(gw_replay_check(old->replay, enc, sizeof(enc), true, now, now, true),
                    GW_REPLAY_OK);
    gw_runtime_inherit(same, old);
    CU_ASSERT_PTR_EQUAL(same->replay, old->replay);
    CU_ASSERT_EQUAL(gw_replay_check(same->replay, enc, sizeof(enc), true, now, now, true),
                    GW_REPLAY_SEEN);
    /* A longer window: still the same cache, and once committed the entry lives a
       window past its Date under the new window too: a copy dated |now| is still in
       the 90 s window at now + 80, so it must still be remembered (its first life
       ended at now + 61). */
    CU_ASSERT_EQUAL(gw_runtime_reloadable(old, window, err, sizeof(err)), 0);
    gw_runtime_inherit(window, old);
    CU_ASSERT_PTR_EQUAL(window->replay, old->replay);
    gw_runtime_commit(window);
    CU_ASSERT_EQUAL(gw_replay_check(old->replay, enc, sizeof(enc), true, now, now + 80,
                                    true),
                    GW_REPLAY_SEEN);
    /* Size: only a restart changes it; and what only a restart applies. */
    CU_ASSERT_EQUAL(gw_runtime_reloadable(old, size, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sealed.replay_cache changed"));
    CU_ASSERT_EQUAL(gw_runtime_reloadable(old, same, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(gw_runtime_reloadable(old, logs, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "error_log changed"));
    /* The old generation goes first; the shared cache lives on with the new one. */
    gw_runtime_free(old);
    CU_ASSERT_EQUAL(gw_replay_check(same->replay, enc, sizeof(enc), true, now, now, true),
                    GW_REPLAY_SEEN);
    gw_runtime_free(same);
    gw_runtime_free(window);
    gw_runtime_free(size);
    gw_runtime_free(logs);
    CU_ASSERT(unlink(path) == 0);
    CU_ASSERT(rmdir(dir) == 0);
}

/* Every limit reaches the transport, the two slow-peer keys included. */
static void limits_pass_through(void)
{
    adapter_register_builtin();
    char err[512] = "";
    struct gw_runtime *rt = load("listen:\n  - address: \"127.0.0.1:1\"\n"
                                 "limits:\n  stream_timeout: 7s\n  memory_budget: 3m\n"
                                 "  body_timeout: 2s\n",
                                 err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rt);
    CU_ASSERT_EQUAL(rt->limits.stream_timeout_ms, 7000);
    CU_ASSERT_EQUAL(rt->limits.memory_budget, 3u << 20);
    CU_ASSERT_EQUAL(rt->limits.body_timeout_ms, 2000);
    gw_runtime_free(rt);
}

int test_gw_runtime(void)
{
    CU_pSuite s = CU_add_suite("gw_runtime", NULL, NULL);
    if (!s || !CU_add_test(s, "defaults agree across layers", defaults_agree) ||
        !CU_add_test(s, "errors carry file:line", errors_have_lines) ||
        !CU_add_test(s, "reload keeps the replay cache", reload_keeps_replay_cache) ||
        !CU_add_test(s, "limits pass through", limits_pass_through))
        return -1;
    return 0;
}

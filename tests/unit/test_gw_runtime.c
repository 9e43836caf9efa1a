/* The runtime built from a config snapshot: defaults agree across layers, and errors
   found after parsing (adapters, TLS files, key store) carry file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        !CU_add_test(s, "limits pass through", limits_pass_through))
        return -1;
    return 0;
}

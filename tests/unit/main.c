/* Runs every CUnit suite under tests/unit; exits non-zero on any failure. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit_registry.h"

int main(int argc, char **argv)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (size_t i = 0; unit_suites[i].name; i++) {
        /* Arguments, if any, pick the suites whose names contain one of them. */
        bool pick = argc < 2;
        for (int a = 1; a < argc && !pick; a++)
            pick = strstr(unit_suites[i].name, argv[a]) != NULL;
        if (!pick)
            continue;
        if (unit_suites[i].add() != 0) {
            fprintf(stderr, "cannot register %s\n", unit_suites[i].name);
            CU_cleanup_registry();
            return 2;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    printf("\n%u passed, %u failed\n", run - CU_get_number_of_tests_failed(),
           CU_get_number_of_tests_failed());
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

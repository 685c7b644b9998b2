/* The C tests' assertion: reports the failed condition with a printf-style explanation and counts it, so one
 * run shows every failure; a test's exit status is `failures != 0`. */
#ifndef GRAMDEX_TEST_CHECK_H
#define GRAMDEX_TEST_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

#endif

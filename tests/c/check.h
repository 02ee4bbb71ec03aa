/* What every C test program of libmultihead shares: pass/fail counters, CHECK, EXPECT_STATUS
 * (the status, and an error message that names the argument), OK, and contiguous descriptors.
 * Include it once, after <stdio.h>, <stdlib.h>, <string.h> and "multihead.h". */
#ifndef MULTIHEAD_TESTS_CHECK_H
#define MULTIHEAD_TESTS_CHECK_H

static int passed, failed;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) {                                                                       \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* The call returns `expected`, and when it is an error, the thread's message is non-empty and
 * contains `word` (the argument it is about). */
#define EXPECT_STATUS(call, expected, word) expect_status((call), (expected), (word), #call, __LINE__)
#define OK(call) EXPECT_STATUS(call, MH_OK, NULL)

static void expect_status(mh_status got, mh_status expected, const char *word, const char *text, int line) {
    if (got != expected) {
        failed++;
        fprintf(stderr, "FAIL line %d: %s returned %s (%d), expected %s; message: %s\n", line, text,
                mh_status_string(got), (int)got, mh_status_string(expected), mh_last_error_message());
        return;
    }
    passed++;
    if (expected == MH_OK) return;
    const char *message = mh_last_error_message();
    if (message == NULL || message[0] == '\0') {
        failed++;
        fprintf(stderr, "FAIL line %d: %s: empty error message\n", line, text);
    } else if (word != NULL && strstr(message, word) == NULL) {
        failed++;
        fprintf(stderr, "FAIL line %d: %s: message \"%s\" does not name \"%s\"\n", line, text, message, word);
    } else {
        passed++;
    }
}

/* A C-contiguous descriptor of `data`; exits when the library refuses it (a test bug). */
static mh_tensor tensor(void *data, int32_t dtype, int32_t rank, const int64_t *shape) {
    mh_tensor t;
    memset(&t, 0, sizeof t);
    if (mh_tensor_init_contiguous(&t, data, dtype, rank, shape) != MH_OK) {
        fprintf(stderr, "mh_tensor_init_contiguous failed: %s\n", mh_last_error_message());
        exit(2);
    }
    return t;
}

#endif

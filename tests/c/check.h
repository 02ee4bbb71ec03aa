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

static inline void expect_status(mh_status got, mh_status expected, const char *word, const char *text, int line) {
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
static inline mh_tensor tensor(void *data, int32_t dtype, int32_t rank, const int64_t *shape) {
    mh_tensor t;
    memset(&t, 0, sizeof t);
    if (mh_tensor_init_contiguous(&t, data, dtype, rank, shape) != MH_OK) {
        fprintf(stderr, "mh_tensor_init_contiguous failed: %s\n", mh_last_error_message());
        exit(2);
    }
    return t;
}

/* Runs one group of checks in a forked child, so that a crash (a trap in the library) counts as
 * one failure and the other groups still run; MH_TEST_NO_FORK=1 runs it in this process. The
 * parent adds the child's counts and prints one line per group. Needs <unistd.h>, <signal.h>
 * and <sys/wait.h> (included below) and _POSIX_C_SOURCE >= 200809L. */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void run_group(const char *name, void (*group)(void)) {
    const char *no_fork = getenv("MH_TEST_NO_FORK");
    if (no_fork && no_fork[0] == '1') {
        group();
        return;
    }
    fflush(stdout);
    fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(600);
        passed = failed = 0;
        group();
        int counts[2] = {passed, failed};
        fflush(stdout);
        fflush(stderr);
        if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts) _exit(3);
        _exit(0);
    }
    close(fds[1]);
    int counts[2] = {0, 0};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got == (ssize_t)sizeof counts && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed += counts[0];
        failed += counts[1];
        printf("%-36s %d passed, %d failed\n", name, counts[0], counts[1]);
    } else {
        failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "FAIL %s: the process died of signal %d (%s): a trap in the library\n", name,
                    WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            fprintf(stderr, "FAIL %s: the process exited with status %d\n", name, WEXITSTATUS(status));
        printf("%-36s CRASHED\n", name);
    }
}

#endif

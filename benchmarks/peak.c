/* Measured FMA peak of this machine, in single-precision GFLOP/s.
 *
 *     cc -O2 -mavx512f -mfma -pthread benchmarks/peak.c -o peak    (or -mavx2 -mfma)
 *     ./peak [threads] [milliseconds] [trials]
 *
 * Each thread (pinned to one logical CPU when possible) runs NACC independent chains of
 * acc = acc * a + b, so the FMA units never wait on a previous result: AVX-512
 * _mm512_fmadd_ps when compiled with -mavx512f, else AVX2 _mm256_fmadd_ps. Every FMA is
 * 2 FLOPs per lane. The figure is the best of `trials` runs of about `milliseconds` each,
 * total FLOPs of all threads over the wall time from a common start to the last finish.
 *
 * Output: one line "threads=<t> gflops=<total> per_thread=<total/t> isa=<avx512|avx2>".
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NACC 12 /* independent FMA chains per thread (c0..c11 below) */

#if defined(__AVX512F__)
typedef __m512 vec;
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define VLANES 16
#define ISA "avx512"
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
#define VLANES 8
#define ISA "avx2"
static float vsum(vec v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    float s = 0;
    for (int i = 0; i < 8; i++) s += lanes[i];
    return s;
}
#else
#error "compile with -mavx512f -mfma or -mavx2 -mfma"
#endif

struct job {
    int cpu;
    uint64_t iterations;
    pthread_barrier_t *barrier;
    float result;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker(void *arg) {
    struct job *job = arg;
    if (job->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(job->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
    }
    /* a < 1 keeps every chain bounded (it converges to b / (1 - a)), far from denormals. */
    const vec a = VSET1(0.999999f), b = VSET1(1e-3f);
    /* Twelve named accumulators (not an array) so they stay in registers. */
    vec c0 = VSET1(1.0f), c1 = VSET1(2.0f), c2 = VSET1(3.0f), c3 = VSET1(4.0f);
    vec c4 = VSET1(5.0f), c5 = VSET1(6.0f), c6 = VSET1(7.0f), c7 = VSET1(8.0f);
    vec c8 = VSET1(9.0f), c9 = VSET1(10.0f), c10 = VSET1(11.0f), c11 = VSET1(12.0f);
    const uint64_t iterations = job->iterations;
    pthread_barrier_wait(job->barrier);
    for (uint64_t it = 0; it < iterations; it++) {
        c0 = VFMA(c0, a, b);
        c1 = VFMA(c1, a, b);
        c2 = VFMA(c2, a, b);
        c3 = VFMA(c3, a, b);
        c4 = VFMA(c4, a, b);
        c5 = VFMA(c5, a, b);
        c6 = VFMA(c6, a, b);
        c7 = VFMA(c7, a, b);
        c8 = VFMA(c8, a, b);
        c9 = VFMA(c9, a, b);
        c10 = VFMA(c10, a, b);
        c11 = VFMA(c11, a, b);
    }
    vec total = VADD(VADD(VADD(c0, c1), VADD(c2, c3)), VADD(VADD(c4, c5), VADD(c6, c7)));
    total = VADD(total, VADD(VADD(c8, c9), VADD(c10, c11)));
    job->result = vsum(total);
    return NULL;
}

/* Runs `threads` workers for `iterations` each; returns the wall time in seconds. */
static double run(int threads, uint64_t iterations, const int *cpus, int ncpu) {
    pthread_t *tids = calloc(threads, sizeof *tids);
    struct job *jobs = calloc(threads, sizeof *jobs);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, threads + 1);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){.cpu = ncpu > 0 ? cpus[t % ncpu] : -1, .iterations = iterations, .barrier = &barrier};
        pthread_create(&tids[t], NULL, worker, &jobs[t]);
    }
    pthread_barrier_wait(&barrier);
    double start = now();
    volatile float sink = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        sink += jobs[t].result;
    }
    double elapsed = now() - start;
    (void)sink;
    pthread_barrier_destroy(&barrier);
    free(tids);
    free(jobs);
    return elapsed;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double ms = argc > 2 ? atof(argv[2]) : 300;
    int trials = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || ms <= 0 || trials < 1) {
        fprintf(stderr, "usage: %s [threads>=1] [milliseconds>0] [trials>=1]\n", argv[0]);
        return 2;
    }
    /* Pin thread t to the t-th CPU this process may run on (one thread per core). */
    cpu_set_t allowed;
    int cpus[1024], ncpu = 0, pin = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    if (pin)
        for (int c = 0; c < CPU_SETSIZE && ncpu < 1024; c++)
            if (CPU_ISSET(c, &allowed)) cpus[ncpu++] = c;
    if (ncpu == 0) pin = 0;

    /* Calibrate the iteration count on one thread so a trial lasts about `ms`. */
    uint64_t iterations = 1 << 16;
    for (;;) {
        double t = run(1, iterations, NULL, 0);
        if (t > 0.02) {
            iterations = (uint64_t)(iterations * (ms / 1000.0) / t) + 1;
            break;
        }
        iterations *= 4;
    }
    double best = 0;
    for (int trial = 0; trial < trials; trial++) {
        double t = run(threads, iterations, cpus, pin ? ncpu : 0);
        double flops = 2.0 * VLANES * NACC * (double)iterations * threads;
        double gflops = flops / t * 1e-9;
        if (gflops > best) best = gflops;
    }
    printf("threads=%d gflops=%.2f per_thread=%.2f isa=%s\n", threads, best, best / threads, ISA);
    return 0;
}

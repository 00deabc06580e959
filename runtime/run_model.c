/*
 * run_model: run one bnnc artifact on raw float32 files.
 *
 *   run_model IN0.bin [IN1.bin ...] OUT0.bin [OUT1.bin ...]
 *
 * Each IN file holds exactly the input's elements as raw native-endian float32
 * (row-major, no header); each OUT file is written the same way. For a
 * dynamic-batch model (bnnc compile --dynamic-batch) the files hold any number
 * N >= 1 of samples, N taken from the size of IN0. The program is
 * generic: it is compiled against one model by force-including the header that
 * `bnnc compile` wrote next to the artifact (which defines BNNC_MODEL):
 *
 *   gcc -O2 -include bireal.h run_model.c bireal.o -o run_model
 *
 * (see examples/c and docs/deploying.md). No Python, bnnc or torch is needed.
 * This file is package data of bnnc.runtime: `bnnc run` builds it against
 * artifacts it cannot load in process (bnnc.runtime.emulated_run).
 */
#include <stdio.h>
#include <stdlib.h>

#ifndef BNNC_MODEL
#error "compile with -include MODEL.h (the header bnnc compile wrote next to the artifact)"
#endif

#define BNNC_CAT_(a, b) a##b
#define BNNC_CAT(a, b) BNNC_CAT_(a, b)
#define STR_(x) #x
#define STR(x) STR_(x)
#define MODEL_RUN_BATCH BNNC_CAT(BNNC_MODEL, _run_batch)
#define MODEL_DYNAMIC_BATCH BNNC_CAT(BNNC_MODEL, _dynamic_batch)
#define MODEL_IN_NUMEL BNNC_CAT(BNNC_MODEL, _input_numel)
#define MODEL_OUT_NUMEL BNNC_CAT(BNNC_MODEL, _output_numel)

enum {
    N_IN = sizeof(MODEL_IN_NUMEL) / sizeof(MODEL_IN_NUMEL[0]),
    N_OUT = sizeof(MODEL_OUT_NUMEL) / sizeof(MODEL_OUT_NUMEL[0]),
};

static float *read_input(const char *path, unsigned long numel) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    float *buf = malloc(numel * sizeof(float) + 1);
    size_t got = buf ? fread(buf, sizeof(float), numel, f) : 0;
    int extra = fgetc(f); /* the file must hold exactly numel floats */
    fclose(f);
    if (!buf || got != numel || extra != EOF) {
        fprintf(stderr, "%s: expected exactly %lu float32 values (%lu bytes)\n", path, numel, numel * 4);
        free(buf);
        return NULL;
    }
    return buf;
}

static int write_output(const char *path, const float *buf, unsigned long numel) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, sizeof(float), numel, f) != numel || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* The number of float32 values in the file at `path`, or -1. */
static long file_floats(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    long bytes = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    fclose(f);
    return bytes < 0 ? -1 : bytes / (long)sizeof(float);
}

int main(int argc, char **argv) {
    if (argc != 1 + N_IN + N_OUT) {
        fprintf(stderr, "usage: %s", argv[0]);
        for (int i = 0; i < N_IN; i++) fprintf(stderr, " in%d.bin", i);
        for (int i = 0; i < N_OUT; i++) fprintf(stderr, " out%d.bin", i);
        fprintf(stderr, "\n  runs the bnnc model '%s' on raw float32 files (", STR(BNNC_MODEL));
        for (int i = 0; i < N_IN; i++) fprintf(stderr, "%sin%d: %lu floats", i ? ", " : "", i, MODEL_IN_NUMEL[i]);
        for (int i = 0; i < N_OUT; i++) fprintf(stderr, ", out%d: %lu floats", i, MODEL_OUT_NUMEL[i]);
        fprintf(stderr, ")\n");
        return 2;
    }
    const float *inputs[N_IN];
    float *outputs[N_OUT];
    unsigned long n = 1; /* samples per file: any N >= 1 for a dynamic-batch model */
    if (MODEL_DYNAMIC_BATCH) {
        long floats = file_floats(argv[1]);
        if (floats < 0) return 1;
        n = (unsigned long)floats / MODEL_IN_NUMEL[0];
        if (n < 1 || n * MODEL_IN_NUMEL[0] != (unsigned long)floats) {
            fprintf(stderr, "%s: expected N >= 1 samples of %lu float32 values, got %ld values\n", argv[1],
                    MODEL_IN_NUMEL[0], floats);
            return 1;
        }
    }
    for (int i = 0; i < N_IN; i++) {
        float *buf = read_input(argv[1 + i], n * MODEL_IN_NUMEL[i]);
        if (!buf) return 1;
        inputs[i] = buf;
    }
    for (int i = 0; i < N_OUT; i++) {
        outputs[i] = calloc(n * MODEL_OUT_NUMEL[i], sizeof(float));
        if (!outputs[i]) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
    }
    MODEL_RUN_BATCH((long long)n, inputs, outputs);
    for (int i = 0; i < N_OUT; i++)
        if (write_output(argv[1 + N_IN + i], outputs[i], n * MODEL_OUT_NUMEL[i]) != 0) return 1;
    for (int i = 0; i < N_IN; i++) free((void *)inputs[i]);
    for (int i = 0; i < N_OUT; i++) free(outputs[i]);
    return 0;
}

/*
 * run_model: run one bnnc artifact on raw float32 files.
 *
 *   run_model IN0.bin [IN1.bin ...] OUT0.bin [OUT1.bin ...]
 *
 * Each IN file holds exactly the input's elements as raw native-endian float32
 * (row-major, no header); each OUT file is written the same way. The program is
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
#define MODEL_RUN BNNC_CAT(BNNC_MODEL, _run)
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
    for (int i = 0; i < N_IN; i++) {
        float *buf = read_input(argv[1 + i], MODEL_IN_NUMEL[i]);
        if (!buf) return 1;
        inputs[i] = buf;
    }
    for (int i = 0; i < N_OUT; i++) {
        outputs[i] = calloc(MODEL_OUT_NUMEL[i], sizeof(float));
        if (!outputs[i]) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
    }
    MODEL_RUN(inputs, outputs);
    for (int i = 0; i < N_OUT; i++)
        if (write_output(argv[1 + N_IN + i], outputs[i], MODEL_OUT_NUMEL[i]) != 0) return 1;
    for (int i = 0; i < N_IN; i++) free((void *)inputs[i]);
    for (int i = 0; i < N_OUT; i++) free(outputs[i]);
    return 0;
}

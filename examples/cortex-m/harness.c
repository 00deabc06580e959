/*
 * A bare-metal harness for a bnnc Cortex-M object: runs the model once on the
 * emulated mps2-an386 board (Cortex-M4) under QEMU, reading the inputs and
 * writing the outputs through Arm semihosting (the host's files):
 *
 *   in0.bin [in1.bin ...]   raw float32, exactly the input's elements
 *   out0.bin [out1.bin ...] written the same way
 *
 * in the directory QEMU runs in. It is generic: compile it with
 * `-include MODEL.h` (the header bnnc compile wrote), as the Makefile does.
 * It needs no C library beyond what the model uses (memcpy/memset under their
 * ARM run-time ABI names, from newlib's libc.a): no heap, no stdio, no crt0.
 */
#include <stdint.h>

#ifndef BNNC_MODEL
#error "compile with -include MODEL.h (the header bnnc compile wrote next to the object)"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define MODEL_RUN CAT(BNNC_MODEL, _run)
#define MODEL_IN_NUMEL CAT(BNNC_MODEL, _input_numel)
#define MODEL_OUT_NUMEL CAT(BNNC_MODEL, _output_numel)

/* Room for all inputs and outputs (floats); -DHARNESS_IO_FLOATS=n to change. */
#ifndef HARNESS_IO_FLOATS
#define HARNESS_IO_FLOATS (256 * 1024)
#endif

enum {
    N_IN = sizeof(MODEL_IN_NUMEL) / sizeof(MODEL_IN_NUMEL[0]),
    N_OUT = sizeof(MODEL_OUT_NUMEL) / sizeof(MODEL_OUT_NUMEL[0]),
};

static float io[HARNESS_IO_FLOATS];

/* ---- Arm semihosting (bkpt 0xab on M-profile) ---------------------------- */
enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_FLEN = 0x0c, SYS_EXIT = 0x18 };
enum { EXIT_OK = 0x20026, EXIT_ERROR = 0x20023 }; /* ADP_Stopped_ApplicationExit / _RunTimeErrorUnknown */

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static unsigned length(const char *s) {
    unsigned n = 0;
    while (s[n]) n++;
    return n;
}

static void say(const char *s) {
    static int console = -1;
    if (console < 0) {
        const uintptr_t args[3] = {(uintptr_t) ":tt", 4 /* "w" */, 3};
        console = semihost(SYS_OPEN, args);
    }
    const uintptr_t args[3] = {(uintptr_t) console, (uintptr_t) s, length(s)};
    semihost(SYS_WRITE, args);
}

static __attribute__((noreturn)) void finish(int ok) {
    semihost(SYS_EXIT, (const void *) (uintptr_t) (ok ? EXIT_OK : EXIT_ERROR));
    for (;;) {
    }
}

/* Read exactly `bytes` from file `name` into `dst` (mode 0 "r", 1 "rb"; 5 "wb"). */
static int transfer(const char *name, void *buf, unsigned bytes, int write) {
    const uintptr_t open_args[3] = {(uintptr_t) name, write ? 5 : 1, length(name)};
    int fd = semihost(SYS_OPEN, open_args);
    if (fd < 0) return 0;
    int ok = 1;
    if (!write) {
        const uintptr_t flen_args[1] = {(uintptr_t) fd};
        ok = semihost(SYS_FLEN, flen_args) == (int) bytes;
    }
    const uintptr_t io_args[3] = {(uintptr_t) fd, (uintptr_t) buf, bytes};
    ok = ok && semihost(write ? SYS_WRITE : SYS_READ, io_args) == 0; /* returns bytes NOT transferred */
    const uintptr_t close_args[1] = {(uintptr_t) fd};
    semihost(SYS_CLOSE, close_args);
    return ok;
}

static void file_name(char *out, const char *prefix, int i) {
    unsigned n = length(prefix);
    for (unsigned k = 0; k < n; k++) out[k] = prefix[k];
    if (i >= 10) out[n++] = (char) ('0' + i / 10);
    out[n++] = (char) ('0' + i % 10);
    for (const char *s = ".bin"; *s; s++) out[n++] = *s;
    out[n] = 0;
}

int main(void) {
    const float *inputs[N_IN];
    float *outputs[N_OUT];
    unsigned long used = 0;
    char name[16];
    for (int i = 0; i < N_IN; i++) {
        unsigned long n = MODEL_IN_NUMEL[i];
        if (used + n > HARNESS_IO_FLOATS) { say("harness: inputs too large (HARNESS_IO_FLOATS)\n"); return 1; }
        file_name(name, "in", i);
        if (!transfer(name, io + used, (unsigned) (n * 4), 0)) { say("harness: cannot read "); say(name); say("\n"); return 1; }
        inputs[i] = io + used;
        used += n;
    }
    for (int i = 0; i < N_OUT; i++) {
        unsigned long n = MODEL_OUT_NUMEL[i];
        if (used + n > HARNESS_IO_FLOATS) { say("harness: outputs too large (HARNESS_IO_FLOATS)\n"); return 1; }
        outputs[i] = io + used;
        used += n;
    }
    MODEL_RUN(inputs, outputs); /* the header's wrapper passes a static arena */
    for (int i = 0; i < N_OUT; i++) {
        file_name(name, "out", i);
        if (!transfer(name, outputs[i], (unsigned) (MODEL_OUT_NUMEL[i] * 4), 1)) { say("harness: cannot write "); say(name); say("\n"); return 1; }
    }
    return 0;
}

/* ---- Reset: no crt0 ------------------------------------------------------- */
extern uint32_t __bss_start__[], __bss_end__[], __stack_top[];

__attribute__((noreturn)) void Reset_Handler(void);
__attribute__((noreturn)) void Reset_Handler(void) {
    /* Enable the FPU (CP10, CP11 full access) before any floating-point instruction. */
    *(volatile uint32_t *) 0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (uint32_t *p = __bss_start__; p < __bss_end__; p++) *p = 0;
    finish(main() == 0);
}

static __attribute__((noreturn)) void fault(void) {
    say("harness: fault\n");
    finish(0);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void)) __stack_top, Reset_Handler, fault, fault, fault, fault, fault,
};

// Fixtures for src/quant/actq.rs, made by llama.cpp's own CPU backend (see README.md here for the
// build command and the llama.cpp commit).
//
// For a few seeded activation vectors this writes, as JSON on stdout:
//   - the bytes of every activation format ("vec_dot_type") the x86 CPU backend rounds a matmul input
//     to, made by that type's `from_float` (ggml_get_type_traits_cpu(t)->from_float: the AVX2
//     quantize_row_q8_0 / q8_1, quantize_row_q8_K, ggml_cpu_fp32_to_fp16 / bf16);
//   - for every supported weight type and a few weight rows, the result of the type's `vec_dot`
//     (the AVX2 kernel of this build) and of its exported `_generic` scalar twin, on those bytes.
// Weight rows: the 4 x 512 tensor of each type in shared/reference/quant/quant_vectors.gguf, plus two
// rows per type quantised here by ggml_quantize_chunk from a seeded source.
//
// Floats are written as their IEEE bit patterns (u32) and bytes as lowercase hex, so nothing is lost.

#include "ggml.h"
#include "ggml-cpu.h"
#include "gguf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The scalar reference kernels are exported by libggml-cpu.so but not declared in a public header.
#define GENERIC(name) \
    void name(int n, float * s, size_t bs, const void * x, size_t bx, const void * y, size_t by, int nrc);
GENERIC(ggml_vec_dot_q4_0_q8_0_generic)
GENERIC(ggml_vec_dot_q4_1_q8_1_generic)
GENERIC(ggml_vec_dot_q5_0_q8_0_generic)
GENERIC(ggml_vec_dot_q5_1_q8_1_generic)
GENERIC(ggml_vec_dot_q8_0_q8_0_generic)
GENERIC(ggml_vec_dot_q2_K_q8_K_generic)
GENERIC(ggml_vec_dot_q3_K_q8_K_generic)
GENERIC(ggml_vec_dot_q4_K_q8_K_generic)
GENERIC(ggml_vec_dot_q5_K_q8_K_generic)
GENERIC(ggml_vec_dot_q6_K_q8_K_generic)
GENERIC(ggml_vec_dot_iq4_nl_q8_0_generic)
GENERIC(ggml_vec_dot_iq4_xs_q8_K_generic)

struct wtype {
    enum ggml_type type;
    ggml_vec_dot_t generic; // NULL: the type has only one kernel
};

static const struct wtype WTYPES[] = {
    { GGML_TYPE_F32, NULL },
    { GGML_TYPE_F16, NULL },
    { GGML_TYPE_BF16, NULL },
    { GGML_TYPE_Q4_0, ggml_vec_dot_q4_0_q8_0_generic },
    { GGML_TYPE_Q4_1, ggml_vec_dot_q4_1_q8_1_generic },
    { GGML_TYPE_Q5_0, ggml_vec_dot_q5_0_q8_0_generic },
    { GGML_TYPE_Q5_1, ggml_vec_dot_q5_1_q8_1_generic },
    { GGML_TYPE_Q8_0, ggml_vec_dot_q8_0_q8_0_generic },
    { GGML_TYPE_Q2_K, ggml_vec_dot_q2_K_q8_K_generic },
    { GGML_TYPE_Q3_K, ggml_vec_dot_q3_K_q8_K_generic },
    { GGML_TYPE_Q4_K, ggml_vec_dot_q4_K_q8_K_generic },
    { GGML_TYPE_Q5_K, ggml_vec_dot_q5_K_q8_K_generic },
    { GGML_TYPE_Q6_K, ggml_vec_dot_q6_K_q8_K_generic },
    { GGML_TYPE_IQ4_NL, ggml_vec_dot_iq4_nl_q8_0_generic },
    { GGML_TYPE_IQ4_XS, ggml_vec_dot_iq4_xs_q8_K_generic },
};
#define N_WTYPES (sizeof(WTYPES) / sizeof(WTYPES[0]))

// The activation formats, in the order they are written.
static const enum ggml_type AFORMATS[] = { GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q8_1,
                                           GGML_TYPE_Q8_K };
#define N_AFORMATS (sizeof(AFORMATS) / sizeof(AFORMATS[0]))

#define ROW_LEN 512
#define FILE_ROWS 4
#define EXTRA_ROWS 2
#define N_ROWS (FILE_ROWS + EXTRA_ROWS)

// ---- a seeded generator (splitmix64 + Box-Muller in double) ----------------------------------

static uint64_t rng_state;

static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(void) { // (0, 1)
    return ((double) (next_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(void) {
    return (float) (sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

// ---- the activation vectors ------------------------------------------------------------------

struct act {
    const char * name;
    int n;
    float x[ROW_LEN];
};

#define MAX_ACTS 16
static struct act ACTS[MAX_ACTS];
static int n_acts;

static struct act * new_act(const char * name, int n, uint64_t seed) {
    struct act * a = &ACTS[n_acts++];
    a->name = name;
    a->n = n;
    rng_state = seed;
    for (int i = 0; i < n; i++) {
        a->x[i] = gauss();
    }
    return a;
}

static void make_acts(void) {
    new_act("gauss512", 512, 1);

    struct act * a = new_act("outliers512", 512, 2);
    for (int i = 0; i < a->n; i += 37) {
        a->x[i] *= 40.0f;
    }
    a->x[5] = 310.0f;
    a->x[300] = -275.5f;

    // A whole zero super-block (Q8_K d = 0) and so eight zero 32-blocks.
    a = new_act("zero_blocks512", 512, 3);
    memset(a->x, 0, 256 * sizeof(float));
    a->x[300] = 0.0f;

    // The largest magnitude of every 32-block (and of each super-block) is negative.
    a = new_act("negmax512", 512, 4);
    for (int b = 0; b < a->n / 32; b++) {
        int at = (b * 7) % 32;
        a->x[b * 32 + at] = -(4.0f + (float) b);
    }

    // Exact ties for the rounding: blocks whose max is 127, so 127/max = 1 (Q8_0/Q8_1) and
    // -127/max = -1 (Q8_K), with half-integer values; +127 and -127 in one block (which sign Q8_K
    // takes); tiny blocks (f16 d subnormal, and d rounding to 0); a block of large values.
    a = new_act("ties512", 512, 5);
    for (int i = 0; i < 256; i++) {
        a->x[i] = (float) ((int) (next_u64() % 253) - 126) + ((i % 3) ? 0.5f : 0.0f);
        if (a->x[i] >= 127.0f || a->x[i] <= -127.0f) {
            a->x[i] = 0.5f;
        }
    }
    for (int b = 0; b < 8; b++) {
        a->x[b * 32 + (b * 5) % 32] = (b % 2) ? -127.0f : 127.0f;
    }
    a->x[32 + 31] = 127.0f; // block 1 holds -127 earlier and +127 last
    for (int i = 256; i < 288; i++) {
        a->x[i] *= 1e-6f; // d = max/127 is an f16 subnormal
    }
    for (int i = 288; i < 320; i++) {
        a->x[i] *= 1e-9f; // d rounds to 0 in f16
    }
    for (int i = 320; i < 352; i++) {
        a->x[i] *= 1e4f;
    }

    // Typical post-norm magnitudes, non-zero mean.
    a = new_act("small512", 512, 6);
    for (int i = 0; i < a->n; i++) {
        a->x[i] = a->x[i] * 0.05f + 0.01f;
    }

    new_act("gauss256", 256, 7);
    a = new_act("outliers256", 256, 8);
    a->x[17] = -90.0f;
    a->x[200] = 64.0f;

    // An odd number of 32-blocks, and a length that only the float formats take.
    new_act("gauss288", 288, 9);
    new_act("gauss287", 287, 10);
}

// ---- output helpers ----------------------------------------------------------------------------

static void put_hex(const void * p, size_t len) {
    const uint8_t * b = p;
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        printf("%02x", b[i]);
    }
    putchar('"');
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const char * upper_name(enum ggml_type t) {
    static char buf[8][16];
    static int k;
    char * s = buf[k++ % 8];
    const char * n = ggml_type_name(t);
    size_t i = 0;
    for (; n[i] && i < 15; i++) {
        s[i] = (n[i] >= 'a' && n[i] <= 'z') ? (char) (n[i] - 32) : n[i];
    }
    s[i] = 0;
    return s;
}

static int fits(enum ggml_type t, int n) {
    return n % ggml_blck_size(t) == 0;
}

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/quant_vectors.gguf > fixtures.json\n", argv[0]);
        return 2;
    }
    ggml_cpu_init();

    struct ggml_context * ctx = NULL;
    struct gguf_init_params gp = { .no_alloc = false, .ctx = &ctx };
    struct gguf_context * g = gguf_init_from_file(argv[1], gp);
    if (!g) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }

    make_acts();

    // The source of the extra weight rows.
    static float src[EXTRA_ROWS * ROW_LEN];
    rng_state = 100;
    for (int i = 0; i < EXTRA_ROWS * ROW_LEN; i++) {
        src[i] = gauss() * 0.02f;
    }
    for (int i = 0; i < ROW_LEN; i += 61) {
        src[ROW_LEN + i] *= 25.0f; // the second extra row has outliers
    }

    printf("{\n\"llama_cpp_commit\": \"0c1e57098bba43ac29e6e3b677cdceebdd22334f\",\n");
    printf("\"generator\": \"tests/data/actq/make_fixtures.c\",\n");

    // Activations and their formats.
    static uint8_t qbuf[N_AFORMATS][ROW_LEN * 4];
    printf("\"acts\": [\n");
    for (int ia = 0; ia < n_acts; ia++) {
        const struct act * a = &ACTS[ia];
        printf("{\"name\": \"%s\", \"n\": %d, \"x\": [", a->name, a->n);
        for (int i = 0; i < a->n; i++) {
            printf(i ? ",%u" : "%u", bits(a->x[i]));
        }
        printf("], \"formats\": {");
        int first = 1;
        for (size_t f = 0; f < N_AFORMATS; f++) {
            enum ggml_type t = AFORMATS[f];
            if (!fits(t, a->n)) {
                continue;
            }
            size_t len = ggml_row_size(t, a->n);
            memset(qbuf[f], 0, sizeof(qbuf[f])); // Q8_K leaves bsums of an all-zero block unset
            ggml_get_type_traits_cpu(t)->from_float(a->x, qbuf[f], a->n);
            printf("%s\"%s\": ", first ? "" : ", ", upper_name(t));
            put_hex(qbuf[f], len);
            first = 0;
        }
        printf("}}%s\n", ia + 1 < n_acts ? "," : "");
    }
    printf("],\n");

    // Weight rows, and the dot products.
    static uint8_t rows[N_ROWS][ROW_LEN * 4];
    printf("\"weights\": [\n");
    for (size_t iw = 0; iw < N_WTYPES; iw++) {
        enum ggml_type t = WTYPES[iw].type;
        const struct ggml_type_traits_cpu * tr = ggml_get_type_traits_cpu(t);
        const size_t rb = ggml_row_size(t, ROW_LEN);

        char tname[16]; // the tensors are named after the type, in lower case
        snprintf(tname, sizeof(tname), "%s", upper_name(t));
        for (char * c = tname; *c; c++) {
            *c = (*c >= 'A' && *c <= 'Z') ? (char) (*c + 32) : *c;
        }
        struct ggml_tensor * w = ggml_get_tensor(ctx, tname);
        if (!w || w->type != t || w->ne[0] != ROW_LEN || w->ne[1] != FILE_ROWS) {
            fprintf(stderr, "tensor %s missing or not %s 512 x 4\n", tname, ggml_type_name(t));
            return 1;
        }
        for (int r = 0; r < FILE_ROWS; r++) {
            memcpy(rows[r], (const char *) w->data + r * rb, rb);
        }
        ggml_quantize_chunk(t, src, rows[FILE_ROWS], 0, EXTRA_ROWS, ROW_LEN, NULL);
        for (int r = 1; r < EXTRA_ROWS; r++) {
            memmove(rows[FILE_ROWS + r], rows[FILE_ROWS] + r * rb, rb);
        }

        printf("{\"type\": \"%s\", \"vec_dot_type\": \"%s\", \"n\": %d, \"rows\": [", upper_name(t),
               upper_name(tr->vec_dot_type), ROW_LEN);
        for (int r = 0; r < N_ROWS; r++) {
            if (r) {
                putchar(',');
            }
            put_hex(rows[r], rb);
        }
        printf("],\n \"dots\": [");
        int first = 1;
        for (int ia = 0; ia < n_acts; ia++) {
            const struct act * a = &ACTS[ia];
            if (!fits(t, a->n) || !fits(tr->vec_dot_type, a->n)) {
                continue;
            }
            static uint8_t q[ROW_LEN * 4];
            memset(q, 0, sizeof(q));
            ggml_get_type_traits_cpu(tr->vec_dot_type)->from_float(a->x, q, a->n);
            for (int r = 0; r < N_ROWS; r++) {
                float s = 0.0f;
                float s_gen = 0.0f;
                tr->vec_dot(a->n, &s, 0, rows[r], 0, q, 0, 1);
                printf("%s\n  {\"act\": %d, \"row\": %d, \"vec_dot\": %u", first ? "" : ",", ia, r, bits(s));
                if (WTYPES[iw].generic) {
                    WTYPES[iw].generic(a->n, &s_gen, 0, rows[r], 0, q, 0, 1);
                    printf(", \"generic\": %u", bits(s_gen));
                }
                printf("}");
                first = 0;
            }
        }
        printf("]}%s\n", iw + 1 < N_WTYPES ? "," : "");
    }
    printf("]\n}\n");

    gguf_free(g);
    ggml_free(ctx);
    return 0;
}

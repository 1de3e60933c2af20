/*
 * LeNet's convolutional part -- conv1 (1 -> 6 channels, 5x5), 2x2 max-pool, ReLU, conv2 (6 -> 16, 5x5),
 * 2x2 max-pool, ReLU -- as one pass forward and one backward, for CPU training.
 *
 * Why: on a CPU these layers were most of a LeNet training step, and not for their arithmetic (README,
 * Performance). As PyTorch operators, conv1 writes a 24x24 output (1.8 MB at batch 128) that the pooling
 * reads back; the pooling keeps int64 indices; backward zero-fills and scatters gradients of the same size
 * before the weight gradient reads them again; oneDNN computes conv2's input gradient (6 channels) at half
 * its forward speed; and a dozen operators each cost their own fixed overhead. Here the unpooled
 * convolution outputs only ever live in registers, and conv1 needs no input gradient (its input is the
 * data), only its 150 weights and 6 biases.
 *
 * Layout: L images at a time (16 with AVX-512, 8 with AVX2, 4 with SSE), one per vector lane ("chunk"),
 * so that every operation is a plain vector multiply-add with a broadcast weight: no shuffles, no
 * gathers, and the same code for any image size. GCC and Clang vector extensions compile this for the
 * machine's vector unit.
 *
 * Results match PyTorch's conv2d + max_pool2d + relu up to float rounding (summation order); the pooling
 * picks the first maximum in row-major order, as PyTorch's CPU kernel does, and NaN propagates.
 * Parallel over chunks with OpenMP (PyTorch's own runtime, whose thread count the caller set); every
 * chunk's weight-gradient partial sums are kept apart and added in a fixed order, so results do not
 * depend on the number of threads.
 */
#include <stdint.h>

#define K 5       /* kernel size of both convolutions */
#define KK (K * K)
#define PAD (K - 1)
#ifndef C1
#define C1 6      /* conv1's output channels, conv2's input channels */
#endif
#ifndef C2
#define C2 16     /* conv2's output channels */
#endif
#define DROPPED 4 /* pooling index of an output the ReLU zeroed: no gradient flows through it */

/*
 * L: images per chunk, one vector register's worth of floats. With 32 vector registers (AVX-512,
 * aarch64) a loop may keep about 30 vectors live: all 25 weight-gradient accumulators of a kernel (TAP_BLOCK),
 * three neighbouring outputs of conv2's input gradient (XB), four output channels of conv2 (COB). With
 * 16, one kernel row, one output, one channel at a time: more would spill to memory (an AVX2 build on an
 * AVX-512 machine was 3x slower so).
 */
#if defined(__AVX512F__)
#define L 16
#define WIDE 1
#elif defined(__AVX__)
#define L 8
#define WIDE 0
#elif defined(__aarch64__)
#define L 4
#define WIDE 1
#else
#define L 4
#define WIDE 0
#endif
#if WIDE
#define TAP_BLOCK KK
#define XB 3
#define COB 4
#else
#define TAP_BLOCK K
#define XB 1
#define COB 1
#endif

typedef float vf __attribute__((vector_size(L * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(L * sizeof(int32_t))));
typedef uint8_t vb __attribute__((vector_size(L)));

/* memcpy: no alignment assumed (compiles to one unaligned vector move) */
static inline vf load(const float *p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
static inline vf blend(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

static inline vi load_index(const uint8_t *p) {
    vb raw;
    __builtin_memcpy(&raw, p, sizeof raw);
    return __builtin_convertvector(raw, vi);
}

static inline void store_index(uint8_t *p, vi arg) {
    const vb raw = __builtin_convertvector(arg, vb);
    __builtin_memcpy(p, &raw, sizeof raw);
}

/* The caller sizes its workspaces with this. */
int lenet_features_lanes(void) { return L; }

/* Sizes: image H x W; conv1 output pooled to P1H x P1W; conv2 output Q; pooled again to P2H x P2W. */
typedef struct {
    int64_t batch, height, width, hw, p1h, p1w, p1, qh, qw, p2h, p2w, p2, padded;
} Dims;

static Dims dims_of(int64_t batch, int64_t height, int64_t width) {
    Dims d;
    d.batch = batch, d.height = height, d.width = width, d.hw = height * width;
    d.p1h = (height - K + 1) / 2, d.p1w = (width - K + 1) / 2, d.p1 = d.p1h * d.p1w;
    d.qh = d.p1h - K + 1, d.qw = d.p1w - K + 1;
    d.p2h = d.qh / 2, d.p2w = d.qw / 2, d.p2 = d.p2h * d.p2w;
    d.padded = d.qw + 2 * PAD;
    return d;
}

/*
 * Moving data between the per-image and the lane layout one whole vector at a time, with the L images'
 * rows read side by side, is what keeps these moves cheap: written one lane at a time, each store lands
 * in another cache line (measured: the moves then cost more than the arithmetic). Lanes past the batch
 * read its last image, and the caller zeroes or ignores them.
 */
static void lane_rows(const float *data, int64_t batch, int64_t row, int64_t first, const float *rows[L],
                      vi *valid) {
    for (int l = 0; l < L; ++l) {
        rows[l] = data + (first + l < batch ? first + l : batch - 1) * row;
        (*valid)[l] = first + l < batch ? -1 : 0;
    }
}

static inline vf gather(const float *rows[L], int64_t offset, vi valid) {
    vf v;
    for (int l = 0; l < L; ++l) v[l] = rows[l][offset];
    return blend(valid, v, (vf){0});
}

/* The 2x2 pooling of four phase values (row-major: top-left, top-right, bottom-left, bottom-right) and the
 * ReLU: the first maximum wins and a NaN takes over, as in PyTorch; only a positive output passes gradient
 * (a NaN stays NaN and passes none), so *arg is the winning phase or DROPPED. */
static inline vf pool_relu(vf a0, vf a1, vf a2, vf a3, vi *arg) {
    const vf later[3] = {a1, a2, a3};
    vf m = a0;
    vi winner = {0};
    for (int q = 0; q < 3; ++q) {
        const vi take = (later[q] > m) | (later[q] != later[q]);
        m = blend(take, later[q], m);
        winner = (winner & ~take) | (((vi){0} + (q + 1)) & take);
    }
    const vi positive = m > 0;
    *arg = (winner & positive) | (((vi){0} + DROPPED) & ~positive);
    return blend(positive | (m != m), m, (vf){0});
}

/* conv1 + pool + ReLU for one chunk: xc (H*W, L) -> hc (C1, P1, L), with the pooling's choices in ic. */
static void block1_forward(const float *xc, const float *weight1, const float *bias1, Dims d, float *hc,
                           uint8_t *ic) {
    for (int64_t i = 0; i < d.p1h; ++i) {
        for (int64_t j = 0; j < d.p1w; ++j) {
            const int64_t pos = i * d.p1w + j;
            const float *base = xc + ((2 * i) * d.width + 2 * j) * L;
            for (int c = 0; c < C1; ++c) {
                const float *w = weight1 + c * KK;
                vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                a0 += bias1[c], a1 += bias1[c], a2 += bias1[c], a3 += bias1[c];
                for (int kh = 0; kh < K; ++kh) {
                    for (int kw = 0; kw < K; ++kw) {
                        const float wv = w[kh * K + kw];
                        const float *p = base + (kh * d.width + kw) * L;
                        a0 += wv * load(p);
                        a1 += wv * load(p + L);
                        a2 += wv * load(p + d.width * L);
                        a3 += wv * load(p + d.width * L + L);
                    }
                }
                vi arg;
                store(hc + (c * d.p1 + pos) * L, pool_relu(a0, a1, a2, a3, &arg));
                store_index(ic + (c * d.p1 + pos) * L, arg);
            }
        }
    }
}

/* conv2 + pool + ReLU for one chunk: hc (C1, P1, L) -> oc (C2, P2, L), choices in ic. weight2: (C1, 5, 5,
 * C2), so that the COB output channels one input vector meets have adjacent weights. */
static void block2_forward(const float *hc, const float *weight2, const float *bias2, Dims d, float *oc,
                           uint8_t *ic) {
    for (int64_t i = 0; i < d.p2h; ++i) {
        for (int64_t j = 0; j < d.p2w; ++j) {
            const int64_t pos = i * d.p2w + j;
            for (int co = 0; co < C2; co += COB) {
                vf a[4][COB];
                for (int b = 0; b < COB; ++b)
                    for (int q = 0; q < 4; ++q) a[q][b] = (vf){0} + bias2[co + b];
                for (int ci = 0; ci < C1; ++ci) {
                    const float *base = hc + (ci * d.p1 + (2 * i) * d.p1w + 2 * j) * L;
                    for (int kh = 0; kh < K; ++kh) {
                        for (int kw = 0; kw < K; ++kw) {
                            const float *p = base + (kh * d.p1w + kw) * L;
                            const vf x0 = load(p), x1 = load(p + L), x2 = load(p + d.p1w * L),
                                     x3 = load(p + d.p1w * L + L);
                            const float *w = weight2 + ((ci * K + kh) * K + kw) * C2 + co;
                            for (int b = 0; b < COB; ++b) {
                                a[0][b] += w[b] * x0;
                                a[1][b] += w[b] * x1;
                                a[2][b] += w[b] * x2;
                                a[3][b] += w[b] * x3;
                            }
                        }
                    }
                }
                for (int b = 0; b < COB; ++b) {
                    vi arg;
                    store(oc + ((co + b) * d.p2 + pos) * L, pool_relu(a[0][b], a[1][b], a[2][b], a[3][b], &arg));
                    store_index(ic + ((co + b) * d.p2 + pos) * L, arg);
                }
            }
        }
    }
}

/*
 * Forward. x: (B, H, W) float32, contiguous. weight1: (C1, 25), bias1: (C1), weight2: (C1, 5, 5, C2),
 * bias2: (C2). out: (B, C2 * P2H * P2W), the flattened (N, C, H, W) order LeNet's first linear layer reads.
 * Kept for backward: xt (chunks, H*W, L), hidden (chunks, C1, P1, L), index1 (chunks, C1, P1, L) and
 * index2 (chunks, C2, P2, L) uint8. Workspace: pooled (chunks, C2 * P2, L).
 * Returns 0, or -1 if the image is too small for both convolutions and poolings.
 */
int lenet_features_forward(const float *x, int64_t batch, int64_t height, int64_t width, const float *weight1,
                           const float *bias1, const float *weight2, const float *bias2, float *out, float *xt,
                           float *hidden, uint8_t *index1, uint8_t *index2, float *pooled) {
    const Dims d = dims_of(batch, height, width);
    if (d.p2h < 1 || d.p2w < 1) return -1;
    const int64_t chunks = (batch + L - 1) / L, features = C2 * d.p2;
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        float *xc = xt + chunk * d.hw * L, *hc = hidden + chunk * C1 * d.p1 * L, *oc = pooled + chunk * features * L;
        const float *rows[L];
        vi valid;
        lane_rows(x, batch, d.hw, chunk * L, rows, &valid);
        for (int64_t p = 0; p < d.hw; ++p) store(xc + p * L, gather(rows, p, valid));
        block1_forward(xc, weight1, bias1, d, hc, index1 + chunk * C1 * d.p1 * L);
        block2_forward(hc, weight2, bias2, d, oc, index2 + chunk * features * L);
        const int64_t images = batch - chunk * L < L ? batch - chunk * L : L;
        for (int64_t f = 0; f < features; ++f) {  /* each image's row written in order */
            const vf v = load(oc + f * L);
            for (int64_t l = 0; l < images; ++l) out[(chunk * L + l) * features + f] = v[l];
        }
    }
    return 0;
}

/* conv2's output gradient for one chunk, from the gradient of the block's flattened output through its
 * ReLU and pooling: g2t (C2, QH, QW + 8, L), rows padded with 4 zero columns each side (see below). */
static void block2_output_grad(const float *grad, Dims d, int64_t chunk, const uint8_t *ic, float *g2t) {
    const int64_t features = C2 * d.p2;
    for (int co = 0; co < C2; ++co) {  /* zero what the pooled positions below do not cover */
        for (int64_t oy = 0; oy < d.qh; ++oy) {
            float *r = g2t + (co * d.qh + oy) * d.padded * L;
            const int64_t covered = oy < 2 * d.p2h ? 2 * d.p2w : 0;
            for (int64_t px = 0; px < d.padded; ++px)
                if (px < PAD || px >= PAD + covered) store(r + px * L, (vf){0});
        }
    }
    const float *rows[L];
    vi valid;
    lane_rows(grad, d.batch, features, chunk * L, rows, &valid);
    for (int co = 0; co < C2; ++co) {
        for (int64_t i = 0; i < d.p2h; ++i) {
            for (int64_t j = 0; j < d.p2w; ++j) {
                const int64_t f = co * d.p2 + i * d.p2w + j;
                const vf g = gather(rows, f, valid);
                const vi arg = load_index(ic + f * L);
                float *top = g2t + ((co * d.qh + 2 * i) * d.padded + PAD + 2 * j) * L;
                store(top, blend(arg == 0, g, (vf){0}));
                store(top + L, blend(arg == 1, g, (vf){0}));
                store(top + d.padded * L, blend(arg == 2, g, (vf){0}));
                store(top + d.padded * L + L, blend(arg == 3, g, (vf){0}));
            }
        }
    }
}

/* conv2's weight and bias gradients for one chunk: partial (C2, C1 * 25 + 1, L). The taps are walked a
 * kernel row at a time from one row pointer each: written as 25 independent addresses, GCC kept 25
 * pointers and spilled them (measured 4x slower). */
static void block2_weight_grad(const float *g2t, const float *hc, Dims d, float *partial) {
    const int64_t row = d.p1w * L;
    for (int co = 0; co < C2; ++co) {
        float *pc = partial + co * (C1 * KK + 1) * L;
        vf bias = {0};
        for (int64_t oy = 0; oy < d.qh; ++oy)
            for (int64_t ox = 0; ox < d.qw; ++ox) bias += load(g2t + ((co * d.qh + oy) * d.padded + PAD + ox) * L);
        store(pc + C1 * KK * L, bias);
        for (int ci = 0; ci < C1; ++ci) {
            for (int kh0 = 0; kh0 < K; kh0 += TAP_BLOCK / K) {
                vf acc[TAP_BLOCK];
                for (int t = 0; t < TAP_BLOCK; ++t) acc[t] = (vf){0};
                for (int64_t oy = 0; oy < d.qh; ++oy) {
                    const float *grow = g2t + ((co * d.qh + oy) * d.padded + PAD) * L;
                    const float *hrow = hc + (ci * d.p1 + (oy + kh0) * d.p1w) * L;
                    for (int64_t ox = 0; ox < d.qw; ++ox) {
                        const vf g = load(grow + ox * L);
#pragma GCC unroll 5
                        for (int r = 0; r < TAP_BLOCK / K; ++r) {
                            const float *h = hrow + r * row + ox * L;
#pragma GCC unroll 5
                            for (int kw = 0; kw < K; ++kw) acc[r * K + kw] += g * load(h + kw * L);
                        }
                    }
                }
                for (int t = 0; t < TAP_BLOCK; ++t) store(pc + (ci * KK + kh0 * K + t) * L, acc[t]);
            }
        }
    }
}

/*
 * conv2's input gradient for one chunk: gh (C1, P1, L). Each output value is one register, each loaded
 * gradient vector feeds all C1 input channels, and with 32 registers XB neighbouring outputs share each
 * broadcast weight; the zero columns of g2t stand in for taps that fall outside. weight2: (C2, 5, 5, C1).
 */
static inline __attribute__((always_inline)) void input_grad_block(const float *g2t, const float *weight2, Dims d,
                                                                   int64_t y, int64_t x0, const int nx, float *gh) {
    const int64_t kh0 = y - (d.qh - 1) > 0 ? y - (d.qh - 1) : 0, kh1 = y < K - 1 ? y : K - 1;
    const int64_t kw0 = x0 - (d.qw - 1) > 0 ? x0 - (d.qw - 1) : 0;
    const int64_t kw1 = x0 + nx - 1 < K - 1 ? x0 + nx - 1 : K - 1;
    vf acc[XB][C1];
    for (int b = 0; b < nx; ++b)
        for (int ci = 0; ci < C1; ++ci) acc[b][ci] = (vf){0};
    for (int co = 0; co < C2; ++co) {
        for (int64_t kh = kh0; kh <= kh1; ++kh) {
            const float *row = g2t + ((co * d.qh + (y - kh)) * d.padded + PAD + x0) * L;
            for (int64_t kw = kw0; kw <= kw1; ++kw) {
                const float *w = weight2 + ((co * K + kh) * K + kw) * C1;
                for (int b = 0; b < nx; ++b) {
                    const vf g = load(row + (b - kw) * L);
                    for (int ci = 0; ci < C1; ++ci) acc[b][ci] += w[ci] * g;
                }
            }
        }
    }
    for (int b = 0; b < nx; ++b)
        for (int ci = 0; ci < C1; ++ci) store(gh + (ci * d.p1 + y * d.p1w + x0 + b) * L, acc[b][ci]);
}

static void block2_input_grad(const float *g2t, const float *weight2, Dims d, float *gh) {
    for (int64_t y = 0; y < d.p1h; ++y) {
        int64_t x0 = 0;
        for (; x0 + XB <= d.p1w; x0 += XB) input_grad_block(g2t, weight2, d, y, x0, XB, gh);
        for (; x0 < d.p1w; ++x0) input_grad_block(g2t, weight2, d, y, x0, 1, gh);
    }
}

/* conv1's weight and bias gradients for one chunk, from gh through the ReLU and pooling: partial (C1, 26, L). */
static void block1_weight_grad(const float *gh, const float *xc, const uint8_t *ic, Dims d, float *partial) {
    for (int c = 0; c < C1; ++c) {
        float *pc = partial + c * (KK + 1) * L;
        for (int t0 = 0; t0 < KK; t0 += TAP_BLOCK) {
            vf acc[TAP_BLOCK], bias = {0};
            for (int t = 0; t < TAP_BLOCK; ++t) acc[t] = (vf){0};
            for (int64_t i = 0; i < d.p1h; ++i) {
                for (int64_t j = 0; j < d.p1w; ++j) {
                    const int64_t pos = c * d.p1 + i * d.p1w + j;
                    const vf g = load(gh + pos * L);
                    const vi arg = load_index(ic + pos * L);
                    const vf g0 = blend(arg == 0, g, (vf){0}), g1 = blend(arg == 1, g, (vf){0});
                    const vf g2 = blend(arg == 2, g, (vf){0}), g3 = blend(arg == 3, g, (vf){0});
                    if (t0 == 0) bias += g0 + g1 + g2 + g3;
                    const float *base = xc + ((2 * i) * d.width + 2 * j) * L;
#pragma GCC unroll 25
                    for (int t = 0; t < TAP_BLOCK; ++t) {
                        const int kh = (t0 + t) / K, kw = (t0 + t) % K;
                        const float *p = base + (kh * d.width + kw) * L;
                        acc[t] += g0 * load(p) + g1 * load(p + L) + g2 * load(p + d.width * L) +
                                  g3 * load(p + d.width * L + L);
                    }
                }
            }
            for (int t = 0; t < TAP_BLOCK; ++t) store(pc + (t0 + t) * L, acc[t]);
            if (t0 == 0) store(pc + KK * L, bias);
        }
    }
}

/* Replace each of `count` vectors at `partial` by the sum of its lanes, in its first lane. */
static void sum_lanes(float *partial, int64_t count) {
    for (int64_t r = 0; r < count; ++r) {
        const vf v = load(partial + r * L);
        float sum = 0.0f;
        for (int l = 0; l < L; ++l) sum += v[l];
        partial[r * L] = sum;
    }
}

/* out[r] = the lane sums of row r added over the chunks in chunk order: the same for any thread count. */
static void sum_chunks(const float *partial, int64_t chunks, int64_t count, float *out) {
    for (int64_t r = 0; r < count; ++r) {
        float sum = 0.0f;
        for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[(chunk * count + r) * L];
        out[r] = sum;
    }
}

/*
 * Backward: from grad, the gradient of the flattened output (B, C2 * P2), to all four parameters'
 * gradients. weight2: (C2, 5, 5, C1). xt, hidden, index1, index2: from the forward. Workspaces: g2t
 * (chunks, C2, QH, QW + 8, L), gh (chunks, C1, P1, L), partial1 (chunks, C1, 26, L), partial2 (chunks,
 * C2, C1 * 25 + 1, L). Overwritten: grad_weight1 (C1, 26: 25 weights then the bias) and grad_weight2 (C2,
 * C1 * 25 + 1: weights then the bias). Returns 0, or -1 for an image too small (see the forward).
 */
int lenet_features_backward(const float *grad, const float *weight2, const float *xt, const float *hidden,
                            const uint8_t *index1, const uint8_t *index2, int64_t batch, int64_t height,
                            int64_t width, float *g2t, float *gh, float *partial1, float *partial2,
                            float *grad_weight1, float *grad_weight2) {
    const Dims d = dims_of(batch, height, width);
    if (d.p2h < 1 || d.p2w < 1) return -1;
    const int64_t chunks = (batch + L - 1) / L;
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        float *g2c = g2t + chunk * C2 * d.qh * d.padded * L, *ghc = gh + chunk * C1 * d.p1 * L;
        const float *hc = hidden + chunk * C1 * d.p1 * L;
        block2_output_grad(grad, d, chunk, index2 + chunk * C2 * d.p2 * L, g2c);
        block2_weight_grad(g2c, hc, d, partial2 + chunk * C2 * (C1 * KK + 1) * L);
        block2_input_grad(g2c, weight2, d, ghc);
        block1_weight_grad(ghc, xt + chunk * d.hw * L, index1 + chunk * C1 * d.p1 * L, d,
                           partial1 + chunk * C1 * (KK + 1) * L);
        sum_lanes(partial1 + chunk * C1 * (KK + 1) * L, C1 * (KK + 1));
        sum_lanes(partial2 + chunk * C2 * (C1 * KK + 1) * L, C2 * (C1 * KK + 1));
    }
    sum_chunks(partial1, chunks, C1 * (KK + 1), grad_weight1);
    sum_chunks(partial2, chunks, C2 * (C1 * KK + 1), grad_weight2);
    return 0;
}

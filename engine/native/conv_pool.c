/*
 * LeNet's first block -- a 5x5 convolution of a one-channel image, 2x2 max-pooling, ReLU -- as one pass.
 *
 * Why: on a CPU this block is most of a LeNet training step (README, Performance). Run as three PyTorch
 * operators it writes the 24x24 convolution output (1.8 MB at batch 128), reads it back to pool it, keeps
 * int64 pooling indices, and in backward zero-fills and scatters a gradient of the same size before the
 * weight gradient reads it again: the cores wait on memory, not arithmetic. Here the convolution output
 * only ever lives in registers, and backward needs no gradient for the input (it is the data), only the
 * 150 weights and 6 biases. Backward also takes over the input gradient of the convolution that follows
 * (conv2), which oneDNN computes slowly for so few channels, and hands it to the block's backward without
 * writing it out in PyTorch's layout.
 *
 * Layout: L images at a time (16 with AVX-512, 8 with AVX2), one per vector lane ("chunk"), so that every
 * operation is a plain vector multiply-add with a broadcast weight: no shuffles, no gathers, and the same
 * code for any image size. GCC and Clang vector extensions compile this for the machine's vector unit.
 *
 * Results match PyTorch's conv2d + max_pool2d + relu up to float rounding (summation order); the pooling
 * picks the first maximum in row-major order, as PyTorch's CPU kernel does, and NaN propagates.
 * Parallel over chunks with OpenMP (PyTorch's own runtime, whose thread count the caller set); every
 * chunk's weight-gradient partial sum is kept apart and summed in a fixed order, so results do not
 * depend on the number of threads.
 */
#include <stdint.h>

#define K 5       /* kernel size */
#define KK (K * K)
#ifndef CHANNELS
#define CHANNELS 6 /* conv1's output channels: compile-time, so that per-channel values stay in registers */
#endif
/*
 * L: images per chunk, one vector register's worth of floats. TAP_BLOCK: how many of the 25 weight
 * gradients one backward pass over a chunk accumulates; with 32 vector registers all of them stay in
 * registers, with 16 one kernel row at a time does (more would spill to memory: 3x slower, measured
 * with an AVX2 build on an AVX-512 machine).
 */
#if defined(__AVX512F__)
#define L 16
#define TAP_BLOCK KK
#elif defined(__AVX__)
#define L 8
#define TAP_BLOCK K
#elif defined(__aarch64__)
#define L 4
#define TAP_BLOCK KK
#else
#define L 4
#define TAP_BLOCK K
#endif
#define DROPPED 4 /* pooling index of an output the ReLU zeroed: no gradient flows through it */

typedef float vf __attribute__((vector_size(L * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(L * sizeof(int32_t))));
typedef uint8_t vb __attribute__((vector_size(L)));

/* memcpy: no alignment assumed (compiles to one unaligned vector move) */
static inline vf load(const float *p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
static inline vf blend(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* The caller sizes its workspaces with this. */
int conv_pool_lanes(void) { return L; }

/*
 * Lane l of a chunk starting at image `first` reads rows[l] (image first + l), and `valid` is all ones
 * in the lanes holding an image; lanes past the batch read its last image, and are zeroed by the caller.
 * Moving data between the per-image and the lane layout one whole vector at a time, with the 16 images'
 * rows read side by side, is what keeps these moves cheap: writing one lane at a time, each store lands
 * in another cache line (measured: the transposes then took longer than the arithmetic).
 */
static void lane_rows(const float *data, int64_t batch, int64_t row, int64_t first, const float *rows[L], vi *valid) {
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

/* x (B, H, W) -> xt (chunks, H*W, L): chunk c's lane l holds image L*c + l, or zeros past the batch. */
static void to_lanes(const float *x, int64_t batch, int64_t hw, int64_t chunk, float *xt) {
    const float *rows[L];
    vi valid;
    lane_rows(x, batch, hw, chunk * L, rows, &valid);
    for (int64_t p = 0; p < hw; ++p) store(xt + p * L, gather(rows, p, valid));
}

/*
 * Forward. x: (B, H, W) float32, contiguous. weight: (C, 25), bias: (C); C must be CHANNELS (else -1).
 * out: (B, PH, PW, C) -- NHWC, the channels-last layout the next convolution reads.
 * xt: (chunks, H*W, L) workspace, kept for backward. index: (chunks, C, PH*PW, L) uint8, for backward.
 */
int conv_pool_relu_forward(const float *x, int64_t batch, int64_t height, int64_t width,
                           const float *weight, const float *bias, int64_t channels,
                           float *out, float *xt, uint8_t *index) {
    if (channels != CHANNELS) return -1;
    const int64_t ph = (height - K + 1) / 2, pw = (width - K + 1) / 2, hw = height * width;
    const int64_t chunks = (batch + L - 1) / L, positions = ph * pw;
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        float *xc = xt + chunk * hw * L;
        to_lanes(x, batch, hw, chunk, xc);
        uint8_t *ic = index + chunk * CHANNELS * positions * L;
        const int64_t images = batch - chunk * L < L ? batch - chunk * L : L;
        for (int64_t i = 0; i < ph; ++i) {
            for (int64_t j = 0; j < pw; ++j) {
                const int64_t pos = i * pw + j;
                const float *base = xc + ((2 * i) * width + 2 * j) * L;
                vf y[CHANNELS];
                for (int c = 0; c < CHANNELS; ++c) {
                    const float *w = weight + c * KK;
                    vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                    a0 += bias[c]; a1 += bias[c]; a2 += bias[c]; a3 += bias[c];
                    for (int kh = 0; kh < K; ++kh) {
                        for (int kw = 0; kw < K; ++kw) {
                            const float wv = w[kh * K + kw];
                            const float *p = base + (kh * width + kw) * L;
                            a0 += wv * load(p);
                            a1 += wv * load(p + L);
                            a2 += wv * load(p + width * L);
                            a3 += wv * load(p + width * L + L);
                        }
                    }
                    /* first maximum in row-major order wins; a NaN takes over, as in PyTorch */
                    const vf later[3] = {a1, a2, a3};
                    vf m = a0;
                    vi arg = {0};
                    for (int q = 0; q < 3; ++q) {
                        const vi take = (later[q] > m) | (later[q] != later[q]);
                        m = blend(take, later[q], m);
                        arg = (arg & ~take) | (((vi){0} + (q + 1)) & take);
                    }
                    /* ReLU: a NaN stays NaN; only a positive output passes gradient, as in PyTorch */
                    const vi positive = m > 0;
                    y[c] = blend(positive | (m != m), m, (vf){0});
                    arg = (arg & positive) | (((vi){0} + DROPPED) & ~positive);
                    uint8_t *ip = ic + (c * positions + pos) * L;
                    for (int l = 0; l < L; ++l) ip[l] = (uint8_t)arg[l];
                }
                /* all channels of a position at once: each image's output row is written in order */
                for (int64_t l = 0; l < images; ++l) {
                    float *o = out + ((chunk * L + l) * positions + pos) * CHANNELS;
                    for (int c = 0; c < CHANNELS; ++c) o[c] = y[c][l];
                }
            }
        }
    }
    return 0;
}

/*
 * The gradient of the block's output from the gradient of the convolution that reads it ("conv2": C
 * channels in, C2 out, 5x5, no padding), in lane layout: gh (C, PH*PW, L) for one chunk. oneDNN computes
 * this input gradient of a 6-channel convolution at a fraction of its forward speed (README, Performance);
 * here each output value is one register, each loaded gradient vector feeds all C input channels, and
 * with 32 registers XB neighbouring outputs share each broadcast weight.
 * g2: (B, QH, QW, C2) NHWC, QH = PH - 4. weight2: (C2, 5, 5, C), reordered so that the C weights a
 * gradient vector meets are adjacent. g2t: (C2, QH, QW + 8, L) workspace for this chunk: rows padded
 * with 4 zero columns each side, so that a block of outputs reads zeros where a tap falls outside.
 */
#if TAP_BLOCK == KK
#define XB 3 /* 3 x 6 accumulators, 6 weights, 3 gradients: 27 of 32 registers */
#else
#define XB 1
#endif
#define PAD (K - 1)

static inline __attribute__((always_inline)) void input_grad_block(
        const float *g2t, const float *weight2, int64_t channels2, int64_t qh, int64_t qw, int64_t pw,
        int64_t positions, int64_t y, int64_t x0, const int nx, float *gh) {
    const int64_t padded = qw + 2 * PAD;
    const int64_t kh0 = y - (qh - 1) > 0 ? y - (qh - 1) : 0, kh1 = y < K - 1 ? y : K - 1;
    const int64_t kw0 = x0 - (qw - 1) > 0 ? x0 - (qw - 1) : 0, kw1 = x0 + nx - 1 < K - 1 ? x0 + nx - 1 : K - 1;
    vf acc[XB][CHANNELS];
    for (int b = 0; b < nx; ++b)
        for (int ci = 0; ci < CHANNELS; ++ci) acc[b][ci] = (vf){0};
    for (int64_t co = 0; co < channels2; ++co) {
        for (int64_t kh = kh0; kh <= kh1; ++kh) {
            const float *row = g2t + ((co * qh + (y - kh)) * padded + PAD + x0) * L;
            for (int64_t kw = kw0; kw <= kw1; ++kw) {
                const float *w = weight2 + ((co * K + kh) * K + kw) * CHANNELS;
                for (int b = 0; b < nx; ++b) {
                    const vf g = load(row + (b - kw) * L);
                    for (int ci = 0; ci < CHANNELS; ++ci) acc[b][ci] += w[ci] * g;
                }
            }
        }
    }
    for (int b = 0; b < nx; ++b)
        for (int ci = 0; ci < CHANNELS; ++ci) store(gh + (ci * positions + y * pw + x0 + b) * L, acc[b][ci]);
}

static void input_grad_lanes(const float *g2, const float *weight2, int64_t batch, int64_t chunk, int64_t ph,
                             int64_t pw, int64_t channels2, float *g2t, float *gh) {
    const int64_t qh = ph - K + 1, qw = pw - K + 1, outputs = qh * qw, positions = ph * pw;
    const int64_t padded = qw + 2 * PAD;
    for (int64_t co = 0; co < channels2; ++co)
        for (int64_t oy = 0; oy < qh; ++oy)
            for (int64_t px = 0; px < PAD; ++px) {
                store(g2t + ((co * qh + oy) * padded + px) * L, (vf){0});
                store(g2t + ((co * qh + oy) * padded + PAD + qw + px) * L, (vf){0});
            }
    const float *rows[L];
    vi valid;
    lane_rows(g2, batch, outputs * channels2, chunk * L, rows, &valid);
    for (int64_t oy = 0; oy < qh; ++oy)
        for (int64_t ox = 0; ox < qw; ++ox)
            for (int64_t co = 0; co < channels2; ++co)
                store(g2t + ((co * qh + oy) * padded + PAD + ox) * L,
                      gather(rows, (oy * qw + ox) * channels2 + co, valid));
    for (int64_t y = 0; y < ph; ++y) {
        int64_t x0 = 0;
        for (; x0 + XB <= pw; x0 += XB)
            input_grad_block(g2t, weight2, channels2, qh, qw, pw, positions, y, x0, XB, gh);
        for (; x0 < pw; ++x0)
            input_grad_block(g2t, weight2, channels2, qh, qw, pw, positions, y, x0, 1, gh);
    }
}

/*
 * Backward of the block and of conv2's input: from g2, the gradient of conv2's output, to the block's
 * weight and bias gradients. xt, index: from the forward. g2t: (chunks, C2, QH, QW + 8, L), gh: (chunks, C,
 * PH*PW, L), partial: (chunks, C, 26, L) workspaces. grad_weight: (C, 25), grad_bias: (C), overwritten.
 * Returns 0, or -1 if conv1 does not have CHANNELS channels (the caller checks first).
 */
int conv_pool_relu_backward(const float *g2, const float *weight2, int64_t channels2, const float *xt,
                            const uint8_t *index, int64_t batch, int64_t height, int64_t width, int64_t channels,
                            float *g2t, float *gh, float *partial, float *grad_weight, float *grad_bias) {
    if (channels != CHANNELS) return -1;
    const int64_t ph = (height - K + 1) / 2, pw = (width - K + 1) / 2, hw = height * width;
    const int64_t chunks = (batch + L - 1) / L, positions = ph * pw;
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const float *xc = xt + chunk * hw * L;
        const uint8_t *ic = index + chunk * channels * positions * L;
        float *gc = gh + chunk * channels * positions * L;
        input_grad_lanes(g2, weight2, batch, chunk, ph, pw, channels2,
                         g2t + chunk * channels2 * (ph - K + 1) * (pw - K + 1 + 2 * PAD) * L, gc);
        for (int64_t c = 0; c < channels; ++c) {
            float *pc = partial + (chunk * channels + c) * (KK + 1) * L;
            for (int t0 = 0; t0 < KK; t0 += TAP_BLOCK) {
                vf acc[TAP_BLOCK], bias = {0};
                for (int t = 0; t < TAP_BLOCK; ++t) acc[t] = (vf){0};
                for (int64_t i = 0; i < ph; ++i) {
                    for (int64_t j = 0; j < pw; ++j) {
                        const int64_t pos = i * pw + j;
                        const vf g = load(gc + (c * positions + pos) * L);
                        vb raw;
                        __builtin_memcpy(&raw, ic + (c * positions + pos) * L, L);
                        const vi arg = __builtin_convertvector(raw, vi);
                        const vf g0 = blend(arg == 0, g, (vf){0}), g1 = blend(arg == 1, g, (vf){0});
                        const vf g2v = blend(arg == 2, g, (vf){0}), g3 = blend(arg == 3, g, (vf){0});
                        if (t0 == 0) bias += g0 + g1 + g2v + g3;
                        const float *base = xc + ((2 * i) * width + 2 * j) * L;
                        for (int t = 0; t < TAP_BLOCK; ++t) {
                            const int kh = (t0 + t) / K, kw = (t0 + t) % K;
                            const float *p = base + (kh * width + kw) * L;
                            acc[t] += g0 * load(p) + g1 * load(p + L) + g2v * load(p + width * L) +
                                      g3 * load(p + width * L + L);
                        }
                    }
                }
                for (int t = 0; t < TAP_BLOCK; ++t) store(pc + (t0 + t) * L, acc[t]);
                if (t0 == 0) store(pc + KK * L, bias);
            }
        }
    }
    for (int64_t c = 0; c < channels; ++c) {
        for (int k = 0; k <= KK; ++k) {
            float sum = 0.0f;
            for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                const float *pc = partial + ((chunk * channels + c) * (KK + 1) + k) * L;
                for (int l = 0; l < L; ++l) sum += pc[l];
            }
            if (k < KK) grad_weight[c * KK + k] = sum; else grad_bias[c] = sum;
        }
    }
    return 0;
}

/*
 * Fused full-size passes of SCSA's fast path (Si et al., arXiv 2407.05128) on the CPU.
 *
 * scsa/attention/_scsa_fast.py calls these loops for the passes over the (B, C, H, W) map, which
 * PyTorch would spend several kernels on (broadcasts along a short last axis are slow there), and
 * for SMSA's and PCSA's small graphs (gates, channel attention), forward and backward. The passes
 * work on P = B * C contiguous H x W planes of float32 or float64, one plane (or one sample) per
 * OpenMP iteration, so the result does not depend on the thread count. The gates are given per
 * plane with a row stride, so they may be slices of a larger buffer. The loops along a row are
 * compiled for ResNet's map widths as constants (SPECIALISE_WIDTH) and for AVX2 + FMA next to the
 * baseline (MULTIVERSION).
 *
 * Forward (x_s = x * a_h ⊗ a_w, average pooling with floor-mode windows kh x kw):
 *   means     x -> mean over W (P, H) and mean over H (P, W)
 *   pool      x, a_h, a_w -> y = avgpool(x_s)                   (P, H/kh, W/kw)
 *   gate      x, u, a_w -> x * u ⊗ a_w                           (P, H, W)
 *   forward   all of the forward, one sample (C planes) per OpenMP iteration: the three passes
 *             above with SMSA's gates and PCSA's gate computed between them
 * Backward, for out = x * (a_h g) ⊗ a_w with G = dL/dout and dy = dL/dy:
 *   reduce    G, x -> Σ_w G x a_w (P, H), Σ_h G x a_h (P, W)
 *   share     x, dy -> the pooling's share of dL/da_h (P, H) and dL/da_w (P, W): the same sums
 *                    with G replaced by dy upsampled to the windows, / (kh kw)
 *   dx        G, dy -> G (a_h g) ⊗ a_w + (a_h ⊗ a_w) · upsample(dy) / (kh kw) + c_h ⊕ c_w
 *
 * Built by setup.py as the optional module scsa.attention._native: without it the fast path runs
 * the same passes as PyTorch ops. Linked against libgomp, it shares PyTorch's OpenMP runtime (the
 * one already loaded under that soname), so torch.set_num_threads applies to it too.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MULTIVERSION
#endif

typedef Py_ssize_t idx;

#if defined(__GNUC__)
#define INLINE __attribute__((always_inline))
#else
#define INLINE
#endif

/* Runs `call` with W_ a compile-time constant for the map widths of ResNet's four stages, so the
 * loops along a row unroll and vectorise whole; any other width runs the generic code. */
#define SPECIALISE_WIDTH(w, call)                                                                  \
    switch (w) {                                                                                   \
    case 7: { const idx W_ = 7; call; break; }                                                     \
    case 14: { const idx W_ = 14; call; break; }                                                   \
    case 28: { const idx W_ = 28; call; break; }                                                   \
    case 56: { const idx W_ = 56; call; break; }                                                   \
    default: { const idx W_ = w; call; }                                                           \
    }

/* The same for a width and a window along it: W_ and KW_ constants for ResNet's widths with 7-wide
 * windows (SCSA's default window_size). */
#define SPECIALISE_WINDOW(w, kw, call)                                                             \
    if ((kw) == 7) {                                                                               \
        const idx KW_ = 7;                                                                         \
        SPECIALISE_WIDTH(w, call);                                                                 \
    } else {                                                                                       \
        const idx W_ = w, KW_ = kw;                                                                \
        call;                                                                                      \
    }

/* Columns (rows) per block of the attention's float sums over columns (rows): a block's sum is then
 * added in double. */
#define EXP_BLOCK 128
#define ROW_BLOCK 32

/* Work below this many elements runs on one thread: waking the others costs more. */
#define PARALLEL_MIN 32768

#define DEFINE_KERNELS(T, SUF)                                                                     \
    /* up = one band's row of dy (wp windows) spread over the kw columns of each window and divided \
     * by the window's area; zero in the columns the floor-mode windows leave out */              \
    static inline INLINE void upsample_row_##SUF(const T *dyrow, idx wp, idx kh, idx kw, idx w,    \
                                                 T *up) {                                          \
        T inv = (T)1 / (T)(kh * kw);                                                               \
        for (idx j2 = 0; j2 < wp; ++j2) {                                                          \
            T v = dyrow[j2] * inv;                                                                 \
            for (idx t = 0; t < kw; ++t) up[j2 * kw + t] = v;                                      \
        }                                                                                          \
        for (idx j = wp * kw; j < w; ++j) up[j] = 0;                                               \
    }                                                                                              \
                                                                                                   \
    static inline INLINE void means_body_##SUF(const T *restrict x, idx h, idx w, T *restrict oh,  \
                                               T *restrict ow) {                                   \
        if (w < 16) { /* short rows: whole-row adds for the columns, plain sums for the rows */    \
            for (idx j = 0; j < w; ++j) ow[j] = x[j];                                              \
            for (idx i = 1; i < h; ++i)                                                            \
                _Pragma("omp simd") for (idx j = 0; j < w; ++j) ow[j] += x[i * w + j];             \
            for (idx i = 0; i < h; ++i) {                                                          \
                T s = 0;                                                                           \
                for (idx j = 0; j < w; ++j) s += x[i * w + j];                                     \
                oh[i] = s / (T)w;                                                                  \
            }                                                                                      \
            for (idx j = 0; j < w; ++j) ow[j] /= (T)h;                                             \
            return;                                                                                \
        }                                                                                          \
        for (idx j = 0; j < w; ++j) ow[j] = 0;                                                     \
        for (idx i = 0; i < h; ++i) {                                                              \
            const T *row = x + i * w;                                                              \
            T s = 0;                                                                               \
            _Pragma("omp simd reduction(+ : s)") for (idx j = 0; j < w; ++j) {                     \
                s += row[j];                                                                       \
                ow[j] += row[j];                                                                   \
            }                                                                                      \
            oh[i] = s / (T)w;                                                                      \
        }                                                                                          \
        for (idx j = 0; j < w; ++j) ow[j] /= (T)h;                                                 \
    }                                                                                              \
    MULTIVERSION static void plane_means_##SUF(const T *x, idx h, idx w, T *oh, T *ow) {           \
        SPECIALISE_WIDTH(w, means_body_##SUF(x, h, W_, oh, ow));                                   \
    }                                                                                              \
                                                                                                   \
    static inline INLINE void pool_body_##SUF(const T *restrict x, idx h, idx w,                   \
                                              const T *restrict a, const T *restrict b, idx kh,    \
                                              idx kw, T *restrict y, T *restrict acc) {            \
        idx hp = h / kh, wp = w / kw, wc = wp * kw;                                                \
        T inv = (T)1 / (T)(kh * kw);                                                               \
        for (idx i2 = 0; i2 < hp; ++i2) {                                                          \
            for (idx j = 0; j < wc; ++j) acc[j] = 0;                                               \
            for (idx i = i2 * kh; i < i2 * kh + kh; ++i) {                                         \
                const T *row = x + i * w;                                                          \
                T r = a[i];                                                                        \
                _Pragma("omp simd") for (idx j = 0; j < wc; ++j) acc[j] += r * (row[j] * b[j]);    \
            }                                                                                      \
            for (idx j2 = 0; j2 < wp; ++j2) {                                                      \
                T s = 0;                                                                           \
                for (idx j = j2 * kw; j < j2 * kw + kw; ++j) s += acc[j];                          \
                y[i2 * wp + j2] = s * inv;                                                         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    MULTIVERSION static void plane_pool_##SUF(const T *x, idx h, idx w, const T *a, const T *b,    \
                                              idx kh, idx kw, T *y, T *acc) {                      \
        SPECIALISE_WINDOW(w, kw, pool_body_##SUF(x, h, W_, a, b, kh, KW_, y, acc));                \
    }                                                                                              \
                                                                                                   \
    static inline INLINE void gate_body_##SUF(const T *x, idx h, idx w, const T *u, const T *b,    \
                                              T *out) {                                            \
        for (idx i = 0; i < h; ++i) {                                                              \
            const T *row = x + i * w;                                                              \
            T *orow = out + i * w;                                                                 \
            T r = u[i];                                                                            \
            _Pragma("omp simd") for (idx j = 0; j < w; ++j) orow[j] = row[j] * r * b[j];           \
        }                                                                                          \
    }                                                                                              \
    MULTIVERSION static void plane_gate_##SUF(const T *x, idx h, idx w, const T *u, const T *b,    \
                                              T *out) {                                            \
        SPECIALISE_WIDTH(w, gate_body_##SUF(x, h, W_, u, b, out));                                 \
    }                                                                                              \
                                                                                                   \
    static inline INLINE void reduce_body_##SUF(const T *restrict g, const T *restrict x, idx h,   \
                                                idx w, const T *restrict a, const T *restrict b,   \
                                                T *restrict th, T *restrict tw) {                  \
        for (idx j = 0; j < w; ++j) tw[j] = 0;                                                     \
        for (idx i = 0; i < h; ++i) {                                                              \
            const T *grow = g + i * w, *xrow = x + i * w;                                          \
            T ai = a[i], s = 0;                                                                    \
            _Pragma("omp simd reduction(+ : s)") for (idx j = 0; j < w; ++j) {                     \
                T gx = grow[j] * xrow[j];                                                          \
                s += gx * b[j];                                                                    \
                tw[j] += gx * ai;                                                                  \
            }                                                                                      \
            th[i] = s;                                                                             \
        }                                                                                          \
    }                                                                                              \
    MULTIVERSION static void plane_reduce_##SUF(const T *g, const T *x, idx h, idx w, const T *a,  \
                                                const T *b, T *th, T *tw) {                        \
        SPECIALISE_WIDTH(w, reduce_body_##SUF(g, x, h, W_, a, b, th, tw));                         \
    }                                                                                              \
                                                                                                   \
    /* dL/da_h and dL/da_w through the pooling: the reduce above with G replaced by dy upsampled  \
     * to the windows (and zero where the floor-mode windows leave rows or columns out) */       \
    static inline INLINE void share_body_##SUF(const T *restrict x, idx h, idx w,                  \
                                               const T *restrict a, const T *restrict b,           \
                                               const T *restrict dy, idx kh, idx kw,               \
                                               T *restrict dah, T *restrict daw, T *restrict up) { \
        idx hp = h / kh, wp = w / kw, wc = wp * kw;                                                \
        for (idx j = 0; j < w; ++j) daw[j] = 0;                                                    \
        for (idx i = hp * kh; i < h; ++i) dah[i] = 0;                                              \
        for (idx i2 = 0; i2 < hp; ++i2) {                                                          \
            upsample_row_##SUF(dy + i2 * wp, wp, kh, kw, w, up);                                   \
            for (idx i = i2 * kh; i < i2 * kh + kh; ++i) {                                         \
                const T *xrow = x + i * w;                                                         \
                T ai = a[i], s = 0;                                                                \
                _Pragma("omp simd reduction(+ : s)") for (idx j = 0; j < wc; ++j) {                \
                    T ux = up[j] * xrow[j];                                                        \
                    s += ux * b[j];                                                                \
                    daw[j] += ux * ai;                                                             \
                }                                                                                  \
                dah[i] = s;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    MULTIVERSION static void plane_share_##SUF(const T *x, idx h, idx w, const T *a, const T *b,   \
                                               const T *dy, idx kh, idx kw, T *dah, T *daw,        \
                                               T *up) {                                            \
        SPECIALISE_WINDOW(w, kw, share_body_##SUF(x, h, W_, a, b, dy, kh, KW_, dah, daw, up));     \
    }                                                                                              \
                                                                                                   \
    static inline INLINE void dx_body_##SUF(const T *restrict g, idx h, idx w,                     \
                                            const T *restrict u, const T *restrict a,              \
                                            const T *restrict b, const T *restrict dy, idx kh,     \
                                            idx kw, const T *restrict ch, const T *restrict cw,    \
                                            T *restrict out, T *restrict up) {                     \
        idx hp = h / kh, wp = w / kw;                                                              \
        for (idx i = hp * kh; i < h; ++i) { /* rows the floor-mode windows leave out */            \
            const T *grow = g + i * w;                                                             \
            T *orow = out + i * w;                                                                 \
            T ui = u[i], ci = ch[i];                                                               \
            for (idx j = 0; j < w; ++j) orow[j] = b[j] * (grow[j] * ui) + (ci + cw[j]);            \
        }                                                                                          \
        for (idx i2 = 0; i2 < hp; ++i2) {                                                          \
            upsample_row_##SUF(dy + i2 * wp, wp, kh, kw, w, up);                                   \
            for (idx i = i2 * kh; i < i2 * kh + kh; ++i) {                                         \
                const T *grow = g + i * w;                                                         \
                T *orow = out + i * w;                                                             \
                T ui = u[i], ci = ch[i], ai = a[i];                                                \
                _Pragma("omp simd") for (idx j = 0; j < w; ++j)                                    \
                    orow[j] = b[j] * (grow[j] * ui + ai * up[j]) + (ci + cw[j]);                   \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    MULTIVERSION static void plane_dx_##SUF(const T *g, idx h, idx w, const T *u, const T *a,      \
                                            const T *b, const T *dy, idx kh, idx kw, const T *ch,  \
                                            const T *cw, T *out, T *up) {                          \
        SPECIALISE_WINDOW(w, kw, dx_body_##SUF(g, h, W_, u, a, b, dy, kh, KW_, ch, cw, out, up));  \
    }

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* b[j * ldb + i] = a[i * lda + j] for i < m, j < n, eight rows of a at a time: the fixed inner
 * trip count unrolls, where a plain double loop over short rows spends its time on loop control. */
#define DEFINE_TRANSPOSE(T, SUF)                                                                   \
    static void transpose_into_##SUF(const T *a, idx lda, idx m, idx n, T *b, idx ldb) {           \
        idx i = 0;                                                                                 \
        for (; i + 8 <= m; i += 8)                                                                 \
            for (idx j = 0; j < n; ++j)                                                            \
                for (idx r = 0; r < 8; ++r) b[j * ldb + i + r] = a[(i + r) * lda + j];             \
        for (; i < m; ++i)                                                                         \
            for (idx j = 0; j < n; ++j) b[j * ldb + i] = a[i * lda + j];                           \
    }

DEFINE_TRANSPOSE(float, f32)
DEFINE_TRANSPOSE(double, f64)

/* exp(x) for x <= 0 (softmax arguments after subtracting the row maximum), within about 3 ulp:
 * exp(x) = 2^n 2^f with t = x log2(e) = n + f, |f| <= 1/2, and 2^f a degree-5 polynomial fitted
 * here for relative error (2.3e-7 in float32 over the interval; Taylor's would be 2.4e-6). Written
 * without branches or calls so that the loops around it vectorise; 7 multiply-adds per value.
 * Below 2^-126 it returns 2^-126 ~ 1.2e-38 instead of a subnormal: nothing next to the row's
 * maximum term of 1. */
static inline float exp_nonpositive(float x) {
    float t = x * 1.44269504088896341f;
    t = t > -126.0f ? t : -126.0f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest */
    float f = t - n;
    float p = 1.327647129073739e-3f;
    p = p * f + 9.675541892647743e-3f;
    p = p * f + 5.550713092088699e-2f;
    p = p * f + 2.4022120237350464e-1f;
    p = p * f + 6.931469440460205e-1f;
    p = p * f + 1.0000001192092896f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The channel attention of PCSA for one value column: o_i = Σ_j softmax_j(q_i · k_j) v_j, with q, k
 * (d, n) per batch item (channels are tokens, n pooled positions their features) and v (d). The
 * fast path sends at most 64 features here; beyond 16 the scores accumulate in double.
 * The d×d matrix is never stored: each row of scores lives in a buffer of d values; sums over the
 * d columns accumulate in T within blocks of EXP_BLOCK columns (ROW_BLOCK rows for dk and dv)
 * and in double across blocks. Scratch, counted in doubles: kt (n, d) and 2, srow (d), acc (d),
 * and for the backward dkt (n, d), dvacc (d), and dkb (n, d) and dvb (d) in T. The backward takes
 * do (d) and writes dq, dk (d, n) and dv (d). */
#define DEFINE_ATTENTION(T, SUF, EXP)                                                              \
    /* srow = q_i · kᵀ for n >= 2 features; returns the row's maximum */                           \
    MULTIVERSION static T scores_##SUF(const T *qi, const T *kt, idx d, idx n, T *srow,            \
                                       double *acc) {                                              \
        T q0 = qi[0];                                                                              \
        if (n <= 16) { /* a few features: float sums keep float32's accuracy */                    \
            for (idx j = 0; j < d; ++j) srow[j] = q0 * kt[j];                                      \
            for (idx f = 1; f < n; ++f) {                                                          \
                T qf = qi[f];                                                                      \
                const T *kf = kt + f * d;                                                          \
                for (idx j = 0; j < d; ++j) srow[j] += qf * kf[j];                                 \
            }                                                                                      \
        } else {                                                                                   \
            for (idx j = 0; j < d; ++j) acc[j] = (double)q0 * kt[j];                               \
            for (idx f = 1; f < n; ++f) {                                                          \
                double qf = qi[f];                                                                 \
                const T *kf = kt + f * d;                                                          \
                for (idx j = 0; j < d; ++j) acc[j] += qf * kf[j];                                  \
            }                                                                                      \
            for (idx j = 0; j < d; ++j) srow[j] = (T)acc[j];                                       \
        }                                                                                          \
        T m = srow[0];                                                                             \
        _Pragma("omp simd reduction(max : m)") for (idx j = 1; j < d; ++j) m = srow[j] > m ? srow[j] : m; \
        return m;                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* Row i's scores are mult · src (with one feature q_i0 · k, computed on the fly; else srow)   \
     * and their maximum m: the maximum of one feature is q_i0 times k's largest or smallest value. */ \
    static inline T row_scores_##SUF(const T *qi, const T *kt, idx d, idx n, T *srow, double *acc, \
                                     const T **src, T *mult) {                                     \
        if (n == 1) {                                                                              \
            T q0 = qi[0], hi = q0 * kt[d], lo = q0 * kt[d + 1];                                    \
            *src = kt, *mult = q0;                                                                 \
            return hi > lo ? hi : lo;                                                              \
        }                                                                                          \
        *src = srow, *mult = 1;                                                                    \
        return scores_##SUF(qi, kt, d, n, srow, acc);                                              \
    }                                                                                              \
                                                                                                   \
    /* srow = exp(q_i · kᵀ - max); returns the row sum */                                          \
    MULTIVERSION static double score_row_##SUF(const T *qi, const T *kt, idx d, idx n, T *srow,    \
                                               double *acc) {                                      \
        const T *src;                                                                              \
        T mult, m = row_scores_##SUF(qi, kt, d, n, srow, acc, &src, &mult);                        \
        double den = 0;                                                                            \
        for (idx j0 = 0; j0 < d; j0 += EXP_BLOCK) {                                                \
            idx j1 = j0 + EXP_BLOCK < d ? j0 + EXP_BLOCK : d;                                      \
            T part = 0;                                                                            \
            _Pragma("omp simd reduction(+ : part)") for (idx j = j0; j < j1; ++j) {                \
                srow[j] = EXP(mult * src[j] - m);                                                  \
                part += srow[j];                                                                   \
            }                                                                                      \
            den += part;                                                                           \
        }                                                                                          \
        return den;                                                                                \
    }                                                                                              \
                                                                                                   \
    /* Σ_j e_j and Σ_j e_j v_j with e_j = exp(mult · src_j - m), in one pass that stores nothing:  \
     * T sums over blocks of EXP_BLOCK columns, double across the blocks. */                       \
    MULTIVERSION static void exp_sums_##SUF(const T *src, T mult, T m, const T *v, idx d,          \
                                            double *den, double *num) {                            \
        double sd = 0, sn = 0;                                                                     \
        for (idx j0 = 0; j0 < d; j0 += EXP_BLOCK) {                                                \
            idx j1 = j0 + EXP_BLOCK < d ? j0 + EXP_BLOCK : d;                                      \
            T bd = 0, bn = 0;                                                                      \
            _Pragma("omp simd reduction(+ : bd, bn)") for (idx j = j0; j < j1; ++j) {              \
                T e = EXP(mult * src[j] - m);                                                      \
                bd += e;                                                                           \
                bn += e * v[j];                                                                    \
            }                                                                                      \
            sd += bd, sn += bn;                                                                    \
        }                                                                                          \
        *den = sd, *num = sn;                                                                      \
    }                                                                                              \
                                                                                                   \
    /* kt = kᵀ (n, d); with one feature also k's largest and smallest value at kt[d], kt[d + 1] */ \
    static void transpose_##SUF(const T *k, idx d, idx n, T *kt) {                                 \
        transpose_into_##SUF(k, n, d, n, kt, d);                                                   \
        if (n == 1) {                                                                              \
            T hi = k[0], lo = k[0];                                                                \
            for (idx j = 1; j < d; ++j) hi = k[j] > hi ? k[j] : hi, lo = k[j] < lo ? k[j] : lo;    \
            kt[d] = hi, kt[d + 1] = lo;                                                            \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    MULTIVERSION static void attend_item_##SUF(const T *q, const T *k, const T *v, idx d, idx n,   \
                                               T *o, double *scratch) {                            \
        T *kt = (T *)scratch, *srow = (T *)(scratch + n * d + 2);                                  \
        double *acc = scratch + (n + 1) * d + 2;                                                   \
        transpose_##SUF(k, d, n, kt);                                                              \
        for (idx i = 0; i < d; ++i) {                                                              \
            const T *src;                                                                          \
            T mult, m = row_scores_##SUF(q + i * n, kt, d, n, srow, acc, &src, &mult);             \
            double den, num;                                                                       \
            exp_sums_##SUF(src, mult, m, v, d, &den, &num);                                        \
            o[i] = (T)(num / den);                                                                 \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    MULTIVERSION static void attend_backward_item_##SUF(const T *q, const T *k, const T *v,        \
                                                        const T *o, const T *dout, idx d, idx n,   \
                                                        T *dq, T *dk, T *dv, double *scratch) {    \
        T *kt = (T *)scratch, *srow = (T *)(scratch + n * d + 2);                                  \
        double *dkt = scratch + (n + 1) * d + 2, *dvacc = dkt + n * d, *acc = dvacc + d;           \
        T *dkb = (T *)(acc + d), *dvb = dkb + n * d; /* dkᵀ and dv of the current block of rows */ \
        transpose_##SUF(k, d, n, kt);                                                              \
        for (idx j = 0; j < n * d; ++j) dkt[j] = 0;                                                \
        for (idx j = 0; j < d; ++j) dvacc[j] = 0;                                                  \
        for (idx i0 = 0; i0 < d; i0 += ROW_BLOCK) { /* T sums within a block, double across */      \
            for (idx j = 0; j < (n + 1) * d; ++j) dkb[j] = 0; /* and dvb */                       \
            for (idx i = i0; i < i0 + ROW_BLOCK && i < d; ++i) {                                   \
                const T *qi = q + i * n;                                                           \
                double den = score_row_##SUF(qi, kt, d, n, srow, acc);                             \
                T alpha = (T)(dout[i] / den), oi = o[i];                                           \
                /* attn_ij = e_j / den: dv_j += attn_ij do_i; dl_ij = attn_ij do_i (v_j - o_i) */  \
                for (idx j = 0; j < d; ++j) {                                                      \
                    T ea = srow[j] * alpha;                                                        \
                    dvb[j] += ea;                                                                  \
                    srow[j] = ea * (v[j] - oi);                                                    \
                }                                                                                  \
                for (idx f = 0; f < n; ++f) { /* dq_i = dl_i · k, dkᵀ += q_i ⊗ dl_i */             \
                    const T *kf = kt + f * d;                                                      \
                    T *dkf = dkb + f * d, qf = qi[f];                                              \
                    double sum = 0;                                                                \
                    for (idx j0 = 0; j0 < d; j0 += EXP_BLOCK) {                                    \
                        idx j1 = j0 + EXP_BLOCK < d ? j0 + EXP_BLOCK : d;                          \
                        T part = 0;                                                                \
                        _Pragma("omp simd reduction(+ : part)") for (idx j = j0; j < j1; ++j) {    \
                            part += srow[j] * kf[j];                                               \
                            dkf[j] += qf * srow[j];                                                \
                        }                                                                          \
                        sum += part;                                                               \
                    }                                                                              \
                    dq[i * n + f] = (T)sum;                                                        \
                }                                                                                  \
            }                                                                                      \
            for (idx j = 0; j < n * d; ++j) dkt[j] += dkb[j];                                      \
            for (idx j = 0; j < d; ++j) dvacc[j] += dvb[j];                                        \
        }                                                                                          \
        for (idx j = 0; j < d; ++j) {                                                              \
            dv[j] = (T)dvacc[j];                                                                   \
            for (idx f = 0; f < n; ++f) dk[j * n + f] = (T)dkt[f * d + j];                         \
        }                                                                                          \
    }

DEFINE_ATTENTION(float, f32, exp_nonpositive)
DEFINE_ATTENTION(double, f64, exp)

/* SMSA's gates from the axis means (spec steps 2-3) for one sample and one of the four channel
 * groups: the group's depth-wise Conv1d ('same' zero padding) over the H segment and the W segment
 * of each channel's means, GroupNorm over the group for each axis (two-pass mean and variance, in
 * double), the affine, then the sigmoid, or the softmax along the axis. means: (gc, row) for the
 * group's gc channels, H segment at 0, W segment at offset ow; out: (gc, h + w). The work runs on
 * position-major copies (position, channel), so every loop vectorises over the channels, however
 * short the axis. Scratch: (2 * (lmax + kmax) + 2) * gc values. */
#define DEFINE_GATES(T, SUF, EXP)                                                                  \
    static inline T sigmoid_##SUF(T x) {                                                           \
        T e = EXP(x < 0 ? x : -x), r = 1 / (1 + e); /* exp(-|x|): one division, no overflow */     \
        return x < 0 ? e * r : r;                                                                  \
    }                                                                                              \
                                                                                                   \
    /* One axis of one channel group: tp = the means (gc rows of `row`, l used) zero-padded and    \
     * position-major, o = the depth-wise conv (position-major), and GroupNorm's mean and 1/std. */ \
    MULTIVERSION static void gates_conv_##SUF(const T *means, idx row, idx gc, idx l, const T *wt, \
                                              idx k, const T *bias, double eps, T *tp, T *o,       \
                                              double *mean, double *rstd) {                        \
        idx p = k / 2;                                                                             \
        for (idx i = 0; i < p * gc; ++i) tp[i] = tp[(p + l) * gc + i] = 0;                         \
        transpose_into_##SUF(means, row, gc, l, tp + p * gc, gc);                                  \
        double sum = 0, sq = 0;                                                                    \
        for (idx i = 0; i < l; ++i) {                                                              \
            T *oi = o + i * gc;                                                                    \
            for (idx c = 0; c < gc; ++c) oi[c] = bias[c];                                          \
            for (idx j = 0; j < k; ++j) { /* tap by tap: the loops over channels vectorise */      \
                const T *tj = tp + (i + j) * gc, *wj = wt + j * gc;                                \
                for (idx c = 0; c < gc; ++c) oi[c] += wj[c] * tj[c];                               \
            }                                                                                      \
            _Pragma("omp simd reduction(+ : sum)") for (idx c = 0; c < gc; ++c) sum += oi[c];      \
        }                                                                                          \
        *mean = sum / (double)(gc * l);                                                            \
        _Pragma("omp simd reduction(+ : sq)") for (idx i = 0; i < l * gc; ++i)                     \
            sq += ((double)o[i] - *mean) * ((double)o[i] - *mean);                                 \
        *rstd = 1.0 / sqrt(sq / (double)(gc * l) + eps);                                           \
    }                                                                                              \
                                                                                                   \
    MULTIVERSION static void gates_group_##SUF(const T *means, idx row, idx ow, idx gc, idx h,     \
                                               idx w, const T *weight, idx k, const T *bias,       \
                                               const T *gamma_h, const T *beta_h, const T *gamma_w, \
                                               const T *beta_w, double eps_h, double eps_w,        \
                                               int softmax, T *out, T *scratch) {                  \
        idx len[2] = {h, w}, off_in[2] = {0, ow}, off_out[2] = {0, h};                             \
        idx lmax = h > w ? h : w;                                                                  \
        const T *gam[2] = {gamma_h, gamma_w}, *bet[2] = {beta_h, beta_w};                          \
        double eps[2] = {eps_h, eps_w};                                                            \
        T *tp = scratch, *wt = tp + (lmax + k) * gc, *o = wt + k * gc, *scale = o + lmax * gc;     \
        T *shift = scale + gc;                                                                     \
        transpose_into_##SUF(weight, k, gc, k, wt, gc);                                            \
        for (int axis = 0; axis < 2; ++axis) {                                                     \
            idx l = len[axis];                                                                     \
            double mean, rstd;                                                                     \
            gates_conv_##SUF(means + off_in[axis], row, gc, l, wt, k, bias, eps[axis], tp, o, &mean, &rstd); \
            for (idx c = 0; c < gc; ++c) {                                                         \
                scale[c] = (T)(rstd * gam[axis][c]);                                               \
                shift[c] = (T)(bet[axis][c] - mean * rstd * gam[axis][c]);                         \
            }                                                                                      \
            for (idx i = 0; i < l; ++i) {                                                          \
                T *oi = o + i * gc;                                                                \
                if (softmax)                                                                       \
                    for (idx c = 0; c < gc; ++c) oi[c] = oi[c] * scale[c] + shift[c];              \
                else                                                                               \
                    for (idx c = 0; c < gc; ++c) oi[c] = sigmoid_##SUF(oi[c] * scale[c] + shift[c]); \
            }                                                                                      \
            if (softmax) { /* along the axis, per channel: scale holds the max, shift the sum */   \
                for (idx c = 0; c < gc; ++c) scale[c] = o[c], shift[c] = 0;                        \
                for (idx i = 1; i < l; ++i)                                                        \
                    for (idx c = 0; c < gc; ++c) scale[c] = o[i * gc + c] > scale[c] ? o[i * gc + c] : scale[c]; \
                for (idx i = 0; i < l; ++i)                                                        \
                    for (idx c = 0; c < gc; ++c) {                                                 \
                        o[i * gc + c] = EXP(o[i * gc + c] - scale[c]);                             \
                        shift[c] += o[i * gc + c];                                                 \
                    }                                                                              \
                for (idx i = 0; i < l; ++i)                                                        \
                    for (idx c = 0; c < gc; ++c) o[i * gc + c] /= shift[c];                        \
            }                                                                                      \
            transpose_into_##SUF(o, gc, l, gc, out + off_out[axis], h + w);                        \
        }                                                                                          \
    }

DEFINE_GATES(float, f32, exp_nonpositive)
DEFINE_GATES(double, f64, exp)

/* The backward of gates_group: from dL/da (gc, h + w) to dL/dmeans (gc, row, same layout as the
 * means) and this sample's share of the parameter gradients: dw (gc, k), db (gc), and for each
 * axis dgamma, dbeta (gc). The forward is recomputed first (same arithmetic as gates_group).
 * Scratch: (4 * (lmax + kmax) + 2) * gc + lmax values. */
#define DEFINE_GATES_BACKWARD(T, SUF, EXP)                                                         \
    MULTIVERSION static void gates_group_backward_##SUF(                                           \
        const T *means, idx row, idx ow, idx gc, idx h, idx w, const T *weight, idx k,             \
        const T *bias, const T *gamma_h, const T *beta_h, const T *gamma_w, const T *beta_w,       \
        double eps_h, double eps_w, int softmax, const T *da, T *dmeans, T *dw, T *db,             \
        T *dgamma_h, T *dbeta_h, T *dgamma_w, T *dbeta_w, T *scratch) {                            \
        idx len[2] = {h, w}, off_in[2] = {0, ow}, off_out[2] = {0, h}, p = k / 2;                  \
        idx lmax = h > w ? h : w;                                                                  \
        const T *gam[2] = {gamma_h, gamma_w}, *bet[2] = {beta_h, beta_w};                          \
        T *dgam[2] = {dgamma_h, dgamma_w}, *dbet[2] = {dbeta_h, dbeta_w};                          \
        double eps[2] = {eps_h, eps_w};                                                            \
        T *tp = scratch, *wt = tp + (lmax + k) * gc, *xh = wt + k * gc, *dz = xh + lmax * gc;      \
        T *dtp = dz + lmax * gc, *dwt = dtp + (lmax + k) * gc, *tmp = dwt + k * gc;                \
        transpose_into_##SUF(weight, k, gc, k, wt, gc);                                            \
        for (idx c = 0; c < gc; ++c) db[c] = 0;                                                    \
        for (idx i = 0; i < k * gc; ++i) dwt[i] = 0; /* dw, position-major */                      \
        for (int axis = 0; axis < 2; ++axis) {                                                     \
            idx l = len[axis];                                                                     \
            double L = (double)(gc * l), mean, rstd;                                               \
            gates_conv_##SUF(means + off_in[axis], row, gc, l, wt, k, bias, eps[axis], tp, xh, &mean, &rstd); \
            for (idx i = 0; i < l * gc; ++i) xh[i] = (T)((xh[i] - mean) * rstd);                   \
            /* the gate a and dz = dL/dz (z = xhat gamma + beta), position-major */                \
            transpose_into_##SUF(da + off_out[axis], h + w, gc, l, dz, gc);                        \
            if (!softmax)                                                                          \
                for (idx i = 0; i < l; ++i) {                                                      \
                    T *dzi = dz + i * gc;                                                          \
                    const T *xhi = xh + i * gc, *ga = gam[axis], *be = bet[axis];                  \
                    for (idx c = 0; c < gc; ++c) {                                                 \
                        T a = sigmoid_##SUF(xhi[c] * ga[c] + be[c]);                               \
                        dzi[c] *= a * (1 - a);                                                     \
                    }                                                                              \
                }                                                                                  \
            for (idx c = 0; c < gc && softmax; ++c) {                                              \
                const T *dac = da + c * (h + w) + off_out[axis];                                   \
                for (idx i = 0; i < l; ++i) {                                                      \
                    T z = xh[i * gc + c] * gam[axis][c] + bet[axis][c];                            \
                    tmp[i] = z;                                                                    \
                }                                                                                  \
                T m = tmp[0];                                                                      \
                double den = 0, dot = 0;                                                           \
                for (idx i = 1; i < l; ++i) m = tmp[i] > m ? tmp[i] : m;                           \
                for (idx i = 0; i < l; ++i) tmp[i] = EXP(tmp[i] - m), den += tmp[i];               \
                for (idx i = 0; i < l; ++i) tmp[i] = (T)(tmp[i] / den), dot += tmp[i] * dac[i];    \
                for (idx i = 0; i < l; ++i) dz[i * gc + c] = tmp[i] * (T)(dac[i] - dot);           \
            }                                                                                      \
            /* affine, then GroupNorm's backward: do = rstd (dxh - mean(dxh) - xh mean(dxh xh)) */ \
            double s1 = 0, s2 = 0;                                                                 \
            for (idx c = 0; c < gc; ++c) dgam[axis][c] = 0, dbet[axis][c] = 0;                     \
            for (idx i = 0; i < l; ++i) {                                                          \
                T *dzi = dz + i * gc, *xhi = xh + i * gc;                                          \
                for (idx c = 0; c < gc; ++c) {                                                     \
                    dgam[axis][c] += dzi[c] * xhi[c];                                              \
                    dbet[axis][c] += dzi[c];                                                       \
                    dzi[c] *= gam[axis][c]; /* dz now holds dL/dxhat */                            \
                    s1 += dzi[c];                                                                  \
                    s2 += dzi[c] * xhi[c];                                                         \
                }                                                                                  \
            }                                                                                      \
            s1 /= L;                                                                               \
            s2 /= L;                                                                               \
            for (idx i = 0; i < l * gc; ++i) dz[i] = (T)(rstd * (dz[i] - s1 - xh[i] * s2));        \
            /* the convolution's backward: dtp[i + j] += w_j do_i, dw_j += do_i tp[i + j] */       \
            for (idx i = 0; i < (l + 2 * p) * gc; ++i) dtp[i] = 0;                                 \
            for (idx i = 0; i < l; ++i) {                                                          \
                const T *doi = dz + i * gc;                                                        \
                for (idx c = 0; c < gc; ++c) db[c] += doi[c];                                      \
                for (idx j = 0; j < k; ++j) {                                                      \
                    const T *wj = wt + j * gc, *tj = tp + (i + j) * gc;                            \
                    T *dtj = dtp + (i + j) * gc;                                                   \
                    T *dwj = dwt + j * gc;                                                         \
                    for (idx c = 0; c < gc; ++c) {                                                 \
                        dtj[c] += wj[c] * doi[c];                                                  \
                        dwj[c] += doi[c] * tj[c];                                                  \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            transpose_into_##SUF(dtp + p * gc, gc, l, gc, dmeans + off_in[axis], row);             \
        }                                                                                          \
        transpose_into_##SUF(dwt, gc, k, gc, dw, k);                                               \
    }

DEFINE_GATES_BACKWARD(float, f32, exp_nonpositive)
DEFINE_GATES_BACKWARD(double, f64, exp)

/* PCSA's channel gate (spec steps 6-9) for one sample, forward only: GroupNorm(1) of the pooled
 * tokens y (C, n) with its affine, the depth-wise q, k, v (v averaged over the tokens first:
 * mean_n(attn @ v) = attn @ mean_n(v)), the attention per head, then the sigmoid, or the softmax
 * over the channels. Biases may be NULL. Scratch: (4 * n + 6) * (C / heads) doubles. */
#define DEFINE_CHANNEL_GATE(T, SUF, EXP)                                                           \
    static void pcsa_norm_stats_##SUF(const T *y, idx len, double eps, double *mean, double *rstd) { \
        double sum = 0, sq = 0;                                                                    \
        _Pragma("omp simd reduction(+ : sum)") for (idx i = 0; i < len; ++i) sum += y[i];          \
        *mean = sum / (double)len;                                                                 \
        _Pragma("omp simd reduction(+ : sq)") for (idx i = 0; i < len; ++i)                        \
            sq += ((double)y[i] - *mean) * ((double)y[i] - *mean);                                 \
        *rstd = 1.0 / sqrt(sq / (double)len + eps);                                                \
    }                                                                                              \
                                                                                                   \
    /* one head's q (scaled), k (d, n) and v (d, averaged over the tokens) from its d channels of y */ \
    static void pcsa_qkv_##SUF(const T *y, idx d, idx n, double mean, double rstd, const T *nw,    \
                               const T *nb, const T *qw, const T *qb, const T *kw, const T *kb,    \
                               const T *vw, const T *vb, double scale, T *q, T *k, T *v) {         \
        for (idx i = 0; i < d; ++i) {                                                              \
            T a = (T)(rstd * nw[i]), b = (T)(nb[i] - mean * rstd * nw[i]);                         \
            T sq_ = (T)scale * qw[i], bq = qb ? (T)scale * qb[i] : 0, bk = kb ? kb[i] : 0;         \
            double vs = 0;                                                                         \
            for (idx f = 0; f < n; ++f) {                                                          \
                T t = y[i * n + f] * a + b;                                                        \
                q[i * n + f] = t * sq_ + bq;                                                       \
                k[i * n + f] = t * kw[i] + bk;                                                     \
                vs += t;                                                                           \
            }                                                                                      \
            v[i] = (T)(vs / (double)n) * vw[i] + (vb ? vb[i] : 0);                                 \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    MULTIVERSION static void channel_gate_##SUF(                                                   \
        const T *y, idx C, idx n, idx heads, const T *nw, const T *nb, double eps, const T *qw,    \
        const T *qb, const T *kw, const T *kb, const T *vw, const T *vb, double scale, int softmax, \
        T *g, T *o_out, double *scratch) {                                                         \
        double mean, rstd;                                                                         \
        pcsa_norm_stats_##SUF(y, C * n, eps, &mean, &rstd);                                        \
        idx d = C / heads;                                                                         \
        T *q = (T *)scratch, *k = q + d * n, *v = k + d * n, *o = v + d;                           \
        double *att = scratch + 2 * n * d + 2 * d;                                                 \
        for (idx hd = 0; hd < heads; ++hd) {                                                       \
            pcsa_qkv_##SUF(y + hd * d * n, d, n, mean, rstd, nw + hd * d, nb + hd * d, qw + hd * d, \
                           qb ? qb + hd * d : NULL, kw + hd * d, kb ? kb + hd * d : NULL, vw + hd * d, \
                           vb ? vb + hd * d : NULL, scale, q, k, v);                               \
            attend_item_##SUF(q, k, v, d, n, o, att);                                              \
            for (idx i = 0; i < d; ++i) g[hd * d + i] = o[i];                                      \
        }                                                                                          \
        if (o_out)                                                                                 \
            for (idx c = 0; c < C; ++c) o_out[c] = g[c];                                           \
        if (!softmax) {                                                                            \
            for (idx c = 0; c < C; ++c) g[c] = sigmoid_##SUF(g[c]);                                \
            return;                                                                                \
        }                                                                                          \
        T m = g[0];                                                                                \
        double den = 0;                                                                            \
        for (idx c = 1; c < C; ++c) m = g[c] > m ? g[c] : m;                                       \
        for (idx c = 0; c < C; ++c) {                                                              \
            g[c] = EXP(g[c] - m);                                                                  \
            den += g[c];                                                                           \
        }                                                                                          \
        for (idx c = 0; c < C; ++c) g[c] = (T)(g[c] / den);                                        \
    }

DEFINE_CHANNEL_GATE(float, f32, exp_nonpositive)
DEFINE_CHANNEL_GATE(double, f64, exp)

/* The backward of channel_gate for one sample, given the attention's output o (C) from the forward
 * and dL/dg (C): writes dL/dy (C, n) and this sample's share of the gradients of the norm's weight
 * and bias and of q, k, v's weights and biases (C each). Scratch: (8 * n + 11) * (C / heads) + C doubles. */
#define DEFINE_CHANNEL_GATE_BACKWARD(T, SUF, EXP)                                                  \
    MULTIVERSION static void channel_gate_backward_##SUF(                                          \
        const T *y, idx C, idx n, idx heads, const T *nw, const T *nb, double eps, const T *qw,    \
        const T *qb, const T *kw, const T *kb, const T *vw, const T *vb, double scale, int softmax, \
        const T *o, const T *dg, T *dy, T *dnw, T *dnb, T *dqw, T *dqb, T *dkw, T *dkb, T *dvw,    \
        T *dvb, double *scratch) {                                                                 \
        double mean, rstd;                                                                         \
        pcsa_norm_stats_##SUF(y, C * n, eps, &mean, &rstd);                                        \
        /* the gate's backward: dout = dL/do */                                                    \
        idx d = C / heads;                                                                         \
        T *dout = (T *)(scratch + (8 * n + 11) * d);                                               \
        if (!softmax) {                                                                            \
            for (idx c = 0; c < C; ++c) {                                                          \
                T gc = sigmoid_##SUF(o[c]);                                                        \
                dout[c] = dg[c] * gc * (1 - gc);                                                   \
            }                                                                                      \
        } else {                                                                                   \
            T m = o[0];                                                                            \
            double den = 0, dot = 0;                                                               \
            for (idx c = 1; c < C; ++c) m = o[c] > m ? o[c] : m;                                   \
            for (idx c = 0; c < C; ++c) den += EXP(o[c] - m);                                      \
            for (idx c = 0; c < C; ++c) dot += EXP(o[c] - m) / den * dg[c];                        \
            for (idx c = 0; c < C; ++c) dout[c] = (T)(EXP(o[c] - m) / den * (dg[c] - dot));        \
        }                                                                                          \
        T *q = (T *)scratch, *k = q + d * n, *v = k + d * n, *dq = v + d, *dk = dq + d * n;        \
        T *dv = dk + d * n, *doh = dv + d;                                                         \
        double *att = scratch + 5 * n * d + 4 * d;                                                 \
        double s1 = 0, s2 = 0; /* sums of dxhat and dxhat * xhat over the sample */                \
        for (idx hd = 0; hd < heads; ++hd) {                                                       \
            pcsa_qkv_##SUF(y + hd * d * n, d, n, mean, rstd, nw + hd * d, nb + hd * d, qw + hd * d, \
                           qb ? qb + hd * d : NULL, kw + hd * d, kb ? kb + hd * d : NULL, vw + hd * d, \
                           vb ? vb + hd * d : NULL, scale, q, k, v);                               \
            for (idx i = 0; i < d; ++i) doh[i] = dout[hd * d + i];                                 \
            attend_backward_item_##SUF(q, k, v, o + hd * d, doh, d, n, dq, dk, dv, att);           \
            for (idx i = 0; i < d; ++i) {                                                          \
                idx c = hd * d + i;                                                                \
                T a = (T)(rstd * nw[c]), b = (T)(nb[c] - mean * rstd * nw[c]);                     \
                double gq = 0, gk = 0, sq_ = 0, sk = 0, ybar = 0, gn = 0, bn = 0;                  \
                for (idx f = 0; f < n; ++f) {                                                      \
                    T t = y[c * n + f] * a + b; /* yn */                                           \
                    gq += dq[i * n + f] * t;                                                       \
                    sq_ += dq[i * n + f];                                                          \
                    gk += dk[i * n + f] * t;                                                       \
                    sk += dk[i * n + f];                                                           \
                    ybar += t;                                                                     \
                }                                                                                  \
                ybar /= (double)n;                                                                 \
                dqw[c] = (T)(gq * scale), dqb[c] = (T)(sq_ * scale);                               \
                dkw[c] = (T)gk, dkb[c] = (T)sk;                                                    \
                dvw[c] = (T)(dv[i] * ybar), dvb[c] = dv[i];                                        \
                T dvn = (T)(dv[i] * vw[c] / (double)n);                                            \
                for (idx f = 0; f < n; ++f) {                                                      \
                    T dyn = (T)(scale * dq[i * n + f] * qw[c]) + dk[i * n + f] * kw[c] + dvn;      \
                    T xh = (T)((y[c * n + f] - mean) * rstd);                                      \
                    gn += dyn * xh;                                                                \
                    bn += dyn;                                                                     \
                    T dxh = dyn * nw[c];                                                           \
                    s1 += dxh;                                                                     \
                    s2 += dxh * xh;                                                                \
                    dy[c * n + f] = dxh; /* dL/dxhat for now */                                    \
                }                                                                                  \
                dnw[c] = (T)gn, dnb[c] = (T)bn;                                                    \
            }                                                                                      \
        }                                                                                          \
        s1 /= (double)(C * n);                                                                     \
        s2 /= (double)(C * n);                                                                     \
        for (idx i = 0; i < C * n; ++i) {                                                          \
            double xh = (y[i] - mean) * rstd;                                                      \
            dy[i] = (T)(rstd * (dy[i] - s1 - xh * s2));                                            \
        }                                                                                          \
    }

DEFINE_CHANNEL_GATE_BACKWARD(float, f32, exp_nonpositive)
DEFINE_CHANNEL_GATE_BACKWARD(double, f64, exp)

/* rows[0] += rows[1] + ... + rows[count - 1], for `count` rows of `len` values (per-sample shares of
 * a parameter's gradient, summed in sample order) */
static void sum_rows(int dbl, unsigned long long ptr, idx count, idx len) {
    for (idx r = 1; r < count; ++r)
        for (idx i = 0; i < len; ++i) {
            if (dbl)
                ((double *)(uintptr_t)ptr)[i] += ((double *)(uintptr_t)ptr)[r * len + i];
            else
                ((float *)(uintptr_t)ptr)[i] += ((float *)(uintptr_t)ptr)[r * len + i];
        }
}

/* Each Python entry point: (is_double, pointers and sizes as integers). The caller (the fast
 * path) has checked dtypes, contiguity and shapes; these functions trust it. */

#define PTR(T, v) ((T *)(uintptr_t)(v))
/* body runs for p in [0, P) on the OpenMP threads when `work` (elements touched) is large enough,
 * with `scratch` a private buffer of scratch_len doubles */
#define FOR_PLANES(scratch_len, body)                                                              \
    Py_BEGIN_ALLOW_THREADS;                                                                        \
    _Pragma("omp parallel if (work >= PARALLEL_MIN)")                                              \
    {                                                                                              \
        double *scratch = (scratch_len) > 0 ? malloc(sizeof(double) * (scratch_len)) : NULL;       \
        _Pragma("omp for schedule(static)") for (idx p = 0; p < P; ++p) { body; }                  \
        free(scratch);                                                                             \
    }                                                                                              \
    Py_END_ALLOW_THREADS;

static PyObject *native_means(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long x, oh, ow;
    idx P, h, w, sh, sw;
    if (!PyArg_ParseTuple(args, "pKnnnKnKn", &dbl, &x, &P, &h, &w, &oh, &sh, &ow, &sw)) return NULL;
    idx work = P * h * w;
    FOR_PLANES(0, {
        if (dbl)
            plane_means_f64(PTR(double, x) + p * h * w, h, w, PTR(double, oh) + p * sh,
                            PTR(double, ow) + p * sw);
        else
            plane_means_f32(PTR(float, x) + p * h * w, h, w, PTR(float, oh) + p * sh,
                            PTR(float, ow) + p * sw);
    })
    Py_RETURN_NONE;
}

static PyObject *native_pool(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long x, a, b, y;
    idx P, h, w, sa, sb, kh, kw;
    if (!PyArg_ParseTuple(args, "pKnnnKnKnnnK", &dbl, &x, &P, &h, &w, &a, &sa, &b, &sb, &kh, &kw, &y))
        return NULL;
    idx work = P * h * w, ny = (h / kh) * (w / kw);
    FOR_PLANES(w, {
        if (dbl)
            plane_pool_f64(PTR(double, x) + p * h * w, h, w, PTR(double, a) + p * sa,
                           PTR(double, b) + p * sb, kh, kw, PTR(double, y) + p * ny, scratch);
        else
            plane_pool_f32(PTR(float, x) + p * h * w, h, w, PTR(float, a) + p * sa,
                           PTR(float, b) + p * sb, kh, kw, PTR(float, y) + p * ny, (float *)scratch);
    })
    Py_RETURN_NONE;
}

static PyObject *native_gate(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long x, u, b, out;
    idx P, h, w, su, sb;
    if (!PyArg_ParseTuple(args, "pKnnnKnKnK", &dbl, &x, &P, &h, &w, &u, &su, &b, &sb, &out)) return NULL;
    idx work = P * h * w;
    FOR_PLANES(0, {
        if (dbl)
            plane_gate_f64(PTR(double, x) + p * h * w, h, w, PTR(double, u) + p * su,
                           PTR(double, b) + p * sb, PTR(double, out) + p * h * w);
        else
            plane_gate_f32(PTR(float, x) + p * h * w, h, w, PTR(float, u) + p * su,
                           PTR(float, b) + p * sb, PTR(float, out) + p * h * w);
    })
    Py_RETURN_NONE;
}

static PyObject *native_reduce(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long g, x, a, b, th, tw;
    idx P, h, w, sa, sb;
    if (!PyArg_ParseTuple(args, "pKKnnnKnKnKK", &dbl, &g, &x, &P, &h, &w, &a, &sa, &b, &sb, &th, &tw))
        return NULL;
    idx work = P * h * w;
    FOR_PLANES(0, {
        idx o = p * h * w;
        if (dbl)
            plane_reduce_f64(PTR(double, g) + o, PTR(double, x) + o, h, w, PTR(double, a) + p * sa,
                             PTR(double, b) + p * sb, PTR(double, th) + p * h, PTR(double, tw) + p * w);
        else
            plane_reduce_f32(PTR(float, g) + o, PTR(float, x) + o, h, w, PTR(float, a) + p * sa,
                             PTR(float, b) + p * sb, PTR(float, th) + p * h, PTR(float, tw) + p * w);
    })
    Py_RETURN_NONE;
}

static PyObject *native_share(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long x, a, b, dy, dah, daw;
    idx P, h, w, sa, sb, kh, kw;
    if (!PyArg_ParseTuple(args, "pKnnnKnKnKnnKK", &dbl, &x, &P, &h, &w, &a, &sa, &b, &sb, &dy, &kh, &kw,
                          &dah, &daw))
        return NULL;
    idx work = P * h * w, ny = (h / kh) * (w / kw);
    FOR_PLANES(w, {
        idx o = p * h * w;
        if (dbl)
            plane_share_f64(PTR(double, x) + o, h, w, PTR(double, a) + p * sa, PTR(double, b) + p * sb,
                            PTR(double, dy) + p * ny, kh, kw, PTR(double, dah) + p * h,
                            PTR(double, daw) + p * w, scratch);
        else
            plane_share_f32(PTR(float, x) + o, h, w, PTR(float, a) + p * sa, PTR(float, b) + p * sb,
                            PTR(float, dy) + p * ny, kh, kw, PTR(float, dah) + p * h,
                            PTR(float, daw) + p * w, (float *)scratch);
    })
    Py_RETURN_NONE;
}

static PyObject *native_dx(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long g, u, a, b, dy, ch, cw, out;
    idx P, h, w, su, sa, sb, kh, kw;
    if (!PyArg_ParseTuple(args, "pKnnnKnKnKnKnnKKK", &dbl, &g, &P, &h, &w, &u, &su, &a, &sa, &b, &sb,
                          &dy, &kh, &kw, &ch, &cw, &out))
        return NULL;
    idx work = P * h * w, ny = (h / kh) * (w / kw);
    FOR_PLANES(w, {
        idx o = p * h * w;
        if (dbl)
            plane_dx_f64(PTR(double, g) + o, h, w, PTR(double, u) + p * su, PTR(double, a) + p * sa,
                         PTR(double, b) + p * sb, PTR(double, dy) + p * ny, kh, kw,
                         PTR(double, ch) + p * h, PTR(double, cw) + p * w, PTR(double, out) + o, scratch);
        else
            plane_dx_f32(PTR(float, g) + o, h, w, PTR(float, u) + p * su, PTR(float, a) + p * sa,
                         PTR(float, b) + p * sb, PTR(float, dy) + p * ny, kh, kw, PTR(float, ch) + p * h,
                         PTR(float, cw) + p * w, PTR(float, out) + o, (float *)scratch);
    })
    Py_RETURN_NONE;
}

static PyObject *native_attend(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long q, k, v, o;
    idx items, d, n;
    if (!PyArg_ParseTuple(args, "pKKKnnnK", &dbl, &q, &k, &v, &items, &d, &n, &o)) return NULL;
    idx P = items, work = items * d * d * n;
    FOR_PLANES((n + 2) * d + 2, {
        idx o1 = p * d * n;
        if (dbl)
            attend_item_f64(PTR(double, q) + o1, PTR(double, k) + o1, PTR(double, v) + p * d, d, n,
                            PTR(double, o) + p * d, scratch);
        else
            attend_item_f32(PTR(float, q) + o1, PTR(float, k) + o1, PTR(float, v) + p * d, d, n,
                            PTR(float, o) + p * d, scratch);
    })
    Py_RETURN_NONE;
}

static PyObject *native_attend_backward(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long q, k, v, o, dout, dq, dk, dv;
    idx items, d, n;
    if (!PyArg_ParseTuple(args, "pKKKKKnnnKKK", &dbl, &q, &k, &v, &o, &dout, &items, &d, &n, &dq, &dk, &dv))
        return NULL;
    idx P = items, work = items * d * d * n;
    FOR_PLANES((3 * n + 4) * d + 2, {
        idx o1 = p * d * n;
        idx o2 = p * d;
        if (dbl)
            attend_backward_item_f64(PTR(double, q) + o1, PTR(double, k) + o1, PTR(double, v) + o2,
                                     PTR(double, o) + o2, PTR(double, dout) + o2, d, n,
                                     PTR(double, dq) + o1, PTR(double, dk) + o1, PTR(double, dv) + o2,
                                     scratch);
        else
            attend_backward_item_f32(PTR(float, q) + o1, PTR(float, k) + o1, PTR(float, v) + o2,
                                     PTR(float, o) + o2, PTR(float, dout) + o2, d, n,
                                     PTR(float, dq) + o1, PTR(float, dk) + o1, PTR(float, dv) + o2,
                                     scratch);
    })
    Py_RETURN_NONE;
}

/* The parameters of SMSA's and PCSA's small graphs, as the fast path passes them: one tuple each. */
typedef struct {
    unsigned long long wt[4], bs[4], gh, bh, gw, bw; /* (weight (C/4, k_g), k_g, bias (C/4)) x 4 */
    idx ks[4];
    double eps_h, eps_w;
    int softmax;
} smsa_params;

typedef struct {
    idx heads;
    unsigned long long nw, nb, qw, qb, kw, kb, vw, vb; /* biases may be 0 */
    double eps, scale;
    int softmax;
} pcsa_params;

/* ((weight, k, bias) x 4 groups, gamma_h, beta_h, gamma_w, beta_w, eps_h, eps_w, softmax) */
static int parse_smsa(PyObject *t, smsa_params *s) {
    return PyArg_ParseTuple(t, "KnKKnKKnKKnKKKKKddp", &s->wt[0], &s->ks[0], &s->bs[0], &s->wt[1], &s->ks[1],
                            &s->bs[1], &s->wt[2], &s->ks[2], &s->bs[2], &s->wt[3], &s->ks[3], &s->bs[3], &s->gh,
                            &s->bh, &s->gw, &s->bw, &s->eps_h, &s->eps_w, &s->softmax);
}

/* (heads, norm weight, norm bias, eps, q weight, q bias, k weight, k bias, v weight, v bias, scale,
 * softmax) */
static int parse_pcsa(PyObject *t, pcsa_params *a) {
    return PyArg_ParseTuple(t, "nKKdKKKKKKdp", &a->heads, &a->nw, &a->nb, &a->eps, &a->qw, &a->qb, &a->kw,
                            &a->kb, &a->vw, &a->vb, &a->scale, &a->softmax);
}

static idx smsa_kmax(const smsa_params *s) {
    idx kmax = 1;
    for (int q = 0; q < 4; ++q) kmax = s->ks[q] > kmax ? s->ks[q] : kmax;
    return kmax;
}

/* The small graphs with their parameters taken from the structs, for one sample: means (C, row),
 * gates (C, h + w), y (C, n), g and o (C), and their per-sample parameter gradients. */
#define DEFINE_PARAM_CALLS(T, SUF)                                                                 \
    /* SMSA's gates of channel group q */                                                         \
    static void smsa_group_##SUF(const smsa_params *s, int q, idx C, const T *means, idx row,     \
                                 idx ow, idx h, idx w, T *gates, double *scratch) {                \
        idx gc = C / 4, c0 = q * gc;                                                               \
        gates_group_##SUF(means + c0 * row, row, ow, gc, h, w, PTR(T, s->wt[q]), s->ks[q],          \
                          PTR(T, s->bs[q]), PTR(T, s->gh) + c0, PTR(T, s->bh) + c0,                \
                          PTR(T, s->gw) + c0, PTR(T, s->bw) + c0, s->eps_h, s->eps_w, s->softmax,  \
                          gates + c0 * (h + w), (T *)scratch);                                     \
    }                                                                                              \
                                                                                                   \
    /* its backward: dmeans, and the group's shares dw (C/4, k_q), db (C/4), and of the norms'    \
     * affines: dnorm[0..3] (gamma_h, beta_h, gamma_w, beta_w) are (B, C) buffers, this is row b */ \
    static void smsa_group_backward_##SUF(const smsa_params *s, int q, idx C, const T *means,     \
                                          idx row, idx ow, idx h, idx w, const T *da, T *dmeans,   \
                                          T *dw, T *db, const unsigned long long dnorm[4], idx b,  \
                                          double *scratch) {                                       \
        idx gc = C / 4, c0 = q * gc, r = b * C + c0;                                               \
        gates_group_backward_##SUF(                                                                \
            means + c0 * row, row, ow, gc, h, w, PTR(T, s->wt[q]), s->ks[q], PTR(T, s->bs[q]),     \
            PTR(T, s->gh) + c0, PTR(T, s->bh) + c0, PTR(T, s->gw) + c0, PTR(T, s->bw) + c0,        \
            s->eps_h, s->eps_w, s->softmax, da + c0 * (h + w), dmeans + c0 * row, dw, db,          \
            PTR(T, dnorm[0]) + r, PTR(T, dnorm[1]) + r, PTR(T, dnorm[2]) + r, PTR(T, dnorm[3]) + r, \
            (T *)scratch);                                                                         \
    }                                                                                              \
                                                                                                   \
    /* PCSA's channel gate g (and the attention's output o unless NULL) */                        \
    static void pcsa_sample_##SUF(const pcsa_params *a, const T *y, idx C, idx n, T *g, T *o,     \
                                  double *scratch) {                                               \
        channel_gate_##SUF(y, C, n, a->heads, PTR(T, a->nw), PTR(T, a->nb), a->eps, PTR(T, a->qw),  \
                           PTR(T, a->qb), PTR(T, a->kw), PTR(T, a->kb), PTR(T, a->vw),             \
                           PTR(T, a->vb), a->scale, a->softmax, g, o, scratch);                    \
    }                                                                                              \
                                                                                                   \
    /* its backward: dy, and the shares of the norm's affine and q, k, v's weights and biases:    \
     * dp[0..7] are (B, C) buffers, this is row b */                                               \
    static void pcsa_sample_backward_##SUF(const pcsa_params *a, const T *y, idx C, idx n,        \
                                           const T *o, const T *dg, T *dy,                         \
                                           const unsigned long long dp[8], idx b,                  \
                                           double *scratch) {                                      \
        idx r = b * C;                                                                             \
        channel_gate_backward_##SUF(y, C, n, a->heads, PTR(T, a->nw), PTR(T, a->nb), a->eps,        \
                                    PTR(T, a->qw), PTR(T, a->qb), PTR(T, a->kw), PTR(T, a->kb),    \
                                    PTR(T, a->vw), PTR(T, a->vb), a->scale, a->softmax, o, dg, dy, \
                                    PTR(T, dp[0]) + r, PTR(T, dp[1]) + r, PTR(T, dp[2]) + r,       \
                                    PTR(T, dp[3]) + r, PTR(T, dp[4]) + r, PTR(T, dp[5]) + r,       \
                                    PTR(T, dp[6]) + r, PTR(T, dp[7]) + r, scratch);                \
    }

DEFINE_PARAM_CALLS(float, f32)
DEFINE_PARAM_CALLS(double, f64)

/* The whole forward for one sample (C planes of h x w at x), in the order of the separate passes
 * and with their arithmetic, so the results are the same bit for bit: the axis means (C, row =
 * h + gap + w, the gap zeroed), SMSA's gates (C, h + w), the pooled tokens y (C, n), PCSA's gate g
 * (C) and the attention's output o (C, unless NULL), and out = x * (a_h g) ⊗ a_w (out may be x).
 * Run per sample, the later passes find the sample's planes still in the cache. */
#define DEFINE_FORWARD(T, SUF)                                                                     \
    static void forward_sample_##SUF(const T *x, idx C, idx h, idx w, idx gap, idx kh, idx kw,     \
                                     const smsa_params *s, const pcsa_params *a, T *means,         \
                                     T *gates, T *y, T *g, T *o, T *out, double *scratch) {        \
        idx row = h + gap + w, hw = h * w, n = (h / kh) * (w / kw);                                \
        for (idx c = 0; c < C; ++c) {                                                              \
            T *mc = means + c * row;                                                               \
            plane_means_##SUF(x + c * hw, h, w, mc, mc + h + gap);                                 \
            for (idx i = 0; i < gap; ++i) mc[h + i] = 0;                                           \
        }                                                                                          \
        for (int q = 0; q < 4; ++q) smsa_group_##SUF(s, q, C, means, row, h + gap, h, w, gates, scratch); \
        for (idx c = 0; c < C; ++c)                                                                \
            plane_pool_##SUF(x + c * hw, h, w, gates + c * (h + w), gates + c * (h + w) + h, kh, kw, \
                             y + c * n, (T *)scratch);                                             \
        pcsa_sample_##SUF(a, y, C, n, g, o, scratch);                                              \
        T *u = (T *)scratch;                                                                       \
        for (idx c = 0; c < C; ++c) {                                                              \
            const T *ah = gates + c * (h + w);                                                     \
            for (idx i = 0; i < h; ++i) u[i] = ah[i] * g[c];                                       \
            plane_gate_##SUF(x + c * hw, h, w, u, ah + h, out + c * hw);                           \
        }                                                                                          \
    }

DEFINE_FORWARD(float, f32)
DEFINE_FORWARD(double, f64)

/* Scratch, in doubles, of one item of smsa_group (backward: of smsa_group_backward) and of one
 * sample of pcsa_sample (backward: pcsa_sample_backward). */
static idx smsa_scratch(const smsa_params *s, idx C, idx h, idx w, int backward) {
    idx lmax = h > w ? h : w, kmax = smsa_kmax(s);
    return backward ? (4 * (lmax + kmax) + 2) * (C / 4) + lmax : (2 * (lmax + kmax) + 2) * (C / 4);
}
static idx pcsa_scratch(const pcsa_params *a, idx C, idx n, int backward) {
    idx d = C / a->heads;
    return backward ? (8 * n + 11) * d + C : (4 * n + 6) * d;
}

/* forward(is_double, x, B, C, h, w, gap, kh, kw, smsa, pcsa, means, gates, y, g, o or 0, out): see
 * forward_sample; one sample per OpenMP iteration. */
static PyObject *native_forward(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long x, means, gates, y, g, o, out;
    idx B, C, h, w, gap, kh, kw;
    PyObject *st, *pt;
    smsa_params s;
    pcsa_params a;
    if (!PyArg_ParseTuple(args, "pKnnnnnnnO!O!KKKKKK", &dbl, &x, &B, &C, &h, &w, &gap, &kh, &kw, &PyTuple_Type,
                          &st, &PyTuple_Type, &pt, &means, &gates, &y, &g, &o, &out) ||
        !parse_smsa(st, &s) || !parse_pcsa(pt, &a))
        return NULL;
    idx P = B, work = B * C * h * w, row = h + gap + w, n = (h / kh) * (w / kw);
    idx scratch_len = smsa_scratch(&s, C, h, w, 0);
    if (pcsa_scratch(&a, C, n, 0) > scratch_len) scratch_len = pcsa_scratch(&a, C, n, 0);
    if (w > scratch_len) scratch_len = w;
    FOR_PLANES(scratch_len, {
        idx r = p * C;
        if (dbl)
            forward_sample_f64(PTR(double, x) + r * h * w, C, h, w, gap, kh, kw, &s, &a,
                               PTR(double, means) + r * row, PTR(double, gates) + r * (h + w),
                               PTR(double, y) + r * n, PTR(double, g) + r, o ? PTR(double, o) + r : NULL,
                               PTR(double, out) + r * h * w, scratch);
        else
            forward_sample_f32(PTR(float, x) + r * h * w, C, h, w, gap, kh, kw, &s, &a,
                               PTR(float, means) + r * row, PTR(float, gates) + r * (h + w),
                               PTR(float, y) + r * n, PTR(float, g) + r, o ? PTR(float, o) + r : NULL,
                               PTR(float, out) + r * h * w, scratch);
    })
    Py_RETURN_NONE;
}

/* gates(is_double, means, B, C, h, w, row, ow, smsa, out): SMSA's gates (B, C, h + w) from the
 * means (B, C, row; the W segment at ow). One (sample, channel group) per OpenMP iteration. */
static PyObject *native_gates(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long means, out;
    idx B, C, h, w, row, ow;
    PyObject *st;
    smsa_params s;
    if (!PyArg_ParseTuple(args, "pKnnnnnnO!K", &dbl, &means, &B, &C, &h, &w, &row, &ow, &PyTuple_Type, &st,
                          &out) ||
        !parse_smsa(st, &s))
        return NULL;
    idx P = B * 4, work = B * C * (h + w) * 16;
    FOR_PLANES(smsa_scratch(&s, C, h, w, 0), {
        idx b = p / 4;
        if (dbl)
            smsa_group_f64(&s, (int)(p % 4), C, PTR(double, means) + b * C * row, row, ow, h, w,
                           PTR(double, out) + b * C * (h + w), scratch);
        else
            smsa_group_f32(&s, (int)(p % 4), C, PTR(float, means) + b * C * row, row, ow, h, w,
                           PTR(float, out) + b * C * (h + w), scratch);
    })
    Py_RETURN_NONE;
}

/* channel_gate(is_double, y, B, C, n, pcsa, g, o or 0): y (B, C, n) -> g (B, C), and the
 * attention's output before the gate into o (B, C) unless 0. */
static PyObject *native_channel_gate(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long y, g, o;
    idx B, C, n;
    PyObject *pt;
    pcsa_params a;
    if (!PyArg_ParseTuple(args, "pKnnnO!KK", &dbl, &y, &B, &C, &n, &PyTuple_Type, &pt, &g, &o) ||
        !parse_pcsa(pt, &a))
        return NULL;
    idx P = B, work = B * C * (C / a.heads) * n;
    FOR_PLANES(pcsa_scratch(&a, C, n, 0), {
        if (dbl)
            pcsa_sample_f64(&a, PTR(double, y) + p * C * n, C, n, PTR(double, g) + p * C,
                            o ? PTR(double, o) + p * C : NULL, scratch);
        else
            pcsa_sample_f32(&a, PTR(float, y) + p * C * n, C, n, PTR(float, g) + p * C,
                            o ? PTR(float, o) + p * C : NULL, scratch);
    })
    Py_RETURN_NONE;
}

/* gates_backward(is_double, means, B, C, h, w, row, ow, smsa, da (B, C, h + w), dmeans (B, C, row;
 * its gap is left as is), (dw_g (B, C/4, k_g), db_g (B, C/4)) x 4, dgamma_h, dbeta_h, dgamma_w,
 * dbeta_w (B, C)): parameter gradients per sample, summed into the first sample's rows. */
static PyObject *native_gates_backward(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long means, da, dmeans, dw[4], dbias[4], dnorm[4];
    idx B, C, h, w, row, ow;
    PyObject *st;
    smsa_params s;
    if (!PyArg_ParseTuple(args, "pKnnnnnnO!KKKKKKKKKKKKKK", &dbl, &means, &B, &C, &h, &w, &row, &ow,
                          &PyTuple_Type, &st, &da, &dmeans, &dw[0], &dbias[0], &dw[1], &dbias[1], &dw[2],
                          &dbias[2], &dw[3], &dbias[3], &dnorm[0], &dnorm[1], &dnorm[2], &dnorm[3]) ||
        !parse_smsa(st, &s))
        return NULL;
    idx gc = C / 4, P = B * 4, work = B * C * (h + w) * 32;
    FOR_PLANES(smsa_scratch(&s, C, h, w, 1), {
        idx b = p / 4;
        int q = (int)(p % 4);
        if (dbl)
            smsa_group_backward_f64(&s, q, C, PTR(double, means) + b * C * row, row, ow, h, w,
                                    PTR(double, da) + b * C * (h + w), PTR(double, dmeans) + b * C * row,
                                    PTR(double, dw[q]) + b * gc * s.ks[q], PTR(double, dbias[q]) + b * gc,
                                    dnorm, b, scratch);
        else
            smsa_group_backward_f32(&s, q, C, PTR(float, means) + b * C * row, row, ow, h, w,
                                    PTR(float, da) + b * C * (h + w), PTR(float, dmeans) + b * C * row,
                                    PTR(float, dw[q]) + b * gc * s.ks[q], PTR(float, dbias[q]) + b * gc,
                                    dnorm, b, scratch);
    })
    for (int q = 0; q < 4; ++q) {
        sum_rows(dbl, dw[q], B, gc * s.ks[q]);
        sum_rows(dbl, dbias[q], B, gc);
        sum_rows(dbl, dnorm[q], B, C);
    }
    Py_RETURN_NONE;
}

/* channel_gate_backward(is_double, y, B, C, n, pcsa, o (B, C), dg (B, C), dy (B, C, n), then (B, C)
 * per-sample gradients of: norm weight, norm bias, q, k, v weight and bias), summed into the
 * first sample's rows. */
static PyObject *native_channel_gate_backward(PyObject *self, PyObject *args) {
    int dbl;
    unsigned long long y, o, dg, dy, g[8];
    idx B, C, n;
    PyObject *pt;
    pcsa_params a;
    if (!PyArg_ParseTuple(args, "pKnnnO!KKKKKKKKKKK", &dbl, &y, &B, &C, &n, &PyTuple_Type, &pt, &o, &dg, &dy,
                          &g[0], &g[1], &g[2], &g[3], &g[4], &g[5], &g[6], &g[7]) ||
        !parse_pcsa(pt, &a))
        return NULL;
    idx P = B, work = B * C * (C / a.heads) * n;
    FOR_PLANES(pcsa_scratch(&a, C, n, 1), {
        idx r = p * C;
        if (dbl)
            pcsa_sample_backward_f64(&a, PTR(double, y) + r * n, C, n, PTR(double, o) + r, PTR(double, dg) + r,
                                     PTR(double, dy) + r * n, g, p, scratch);
        else
            pcsa_sample_backward_f32(&a, PTR(float, y) + r * n, C, n, PTR(float, o) + r, PTR(float, dg) + r,
                                     PTR(float, dy) + r * n, g, p, scratch);
    })
    for (int i = 0; i < 8; ++i) sum_rows(dbl, g[i], B, C); /* the samples' shares, into the first row */
    Py_RETURN_NONE;
}

static PyMethodDef native_methods[] = {
    {"forward", native_forward, METH_VARARGS, "The whole forward, one sample at a time."},
    {"means", native_means, METH_VARARGS, "Row and column means of each plane."},
    {"pool", native_pool, METH_VARARGS, "Average pooling of x * a_h ⊗ a_w."},
    {"gate", native_gate, METH_VARARGS, "x * u ⊗ a_w."},
    {"reduce", native_reduce, METH_VARARGS, "The backward's reductions of G and x."},
    {"share", native_share, METH_VARARGS, "The pooling's share of the gates' gradients."},
    {"dx", native_dx, METH_VARARGS, "The gradient of x."},
    {"gates", native_gates, METH_VARARGS, "SMSA's gates from the axis means."},
    {"channel_gate", native_channel_gate, METH_VARARGS, "PCSA's channel gate (forward)."},
    {"gates_backward", native_gates_backward, METH_VARARGS, "The backward of gates."},
    {"channel_gate_backward", native_channel_gate_backward, METH_VARARGS, "The backward of channel_gate."},
    {"attend", native_attend, METH_VARARGS, "softmax(q kᵀ) v for one value column."},
    {"attend_backward", native_attend_backward, METH_VARARGS, "The backward of attend."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "Fused full-size passes of SCSA's fast path (CPU).", -1,
    native_methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }

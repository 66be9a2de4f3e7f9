/* PAM's selected branch, one query at a time (see model.py, _SelectedBranch).

   Each query attends to the null slot and to the keys of its k chosen blocks that are complete in
   its past. Everything a query computes reads only its own row, its own blocks and the null slot,
   in a fixed order: no float of one query's output depends on another query (causality holds bit
   for bit), and forward and backward each make one pass over the query's k * b keys, where plain
   PyTorch needs a gather, a product and a scatter of their own for each step.

   Layout (all contiguous): q, out, dout, dq (n, c, D) for n = batch * heads and the c queries at
   positions t0 .. t0 + c - 1; k, v, dk, dv (n, L, D) tables; chosen (n, c, k) block indices;
   null_k, null_v, dnull_k, dnull_v (H, D), head bh % H. Built twice, for float and double. */

#include <math.h>
#include <stdint.h>

#define PAM_SELECT(T, SUF, EXP)                                                                              \
    /* Four partial sums: a dependency chain a quarter as long, the same order every call. */                \
    static T dot_##SUF(const T *a, const T *b, int64_t d) {                                                  \
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                                    \
        int64_t i = 0;                                                                                       \
        for (; i + 4 <= d; i += 4) {                                                                         \
            s0 += a[i] * b[i];                                                                               \
            s1 += a[i + 1] * b[i + 1];                                                                       \
            s2 += a[i + 2] * b[i + 2];                                                                       \
            s3 += a[i + 3] * b[i + 3];                                                                       \
        }                                                                                                    \
        for (; i < d; ++i) s0 += a[i] * b[i];                                                                \
        return (s0 + s1) + (s2 + s3);                                                                        \
    }                                                                                                        \
                                                                                                             \
    static void axpy_##SUF(T *y, T a, const T *x, int64_t d) {                                               \
        for (int64_t i = 0; i < d; ++i) y[i] += a * x[i];                                                    \
    }                                                                                                        \
                                                                                                             \
    /* p[0] the null slot, p[1 + r * b + u] key u of block r: probabilities (0 where invisible). */          \
    static void probs_##SUF(const T *qi, const T *kt, const int64_t *pick, const T *nk, int64_t pos,         \
                            int64_t top, int64_t b, int64_t D, T scale, T *p) {                              \
        T m = p[0] = dot_##SUF(qi, nk, D) * scale;                                                           \
        for (int64_t r = 0; r < top; ++r) {                                                                  \
            int seen = pick[r] * b + b - 1 <= pos;                                                           \
            for (int64_t u = 0; u < b; ++u) {                                                                \
                T s = seen ? dot_##SUF(qi, kt + (pick[r] * b + u) * D, D) * scale : -INFINITY;               \
                p[1 + r * b + u] = s;                                                                        \
                if (s > m) m = s;                                                                            \
            }                                                                                                \
        }                                                                                                    \
        T z = 0;                                                                                             \
        for (int64_t j = 0; j < 1 + top * b; ++j) z += p[j] = EXP(p[j] - m);                                 \
        for (int64_t j = 0; j < 1 + top * b; ++j) p[j] /= z;                                                 \
    }                                                                                                        \
                                                                                                             \
    void pam_select_forward_##SUF(int64_t n, int64_t H, int64_t c, int64_t D, int64_t L,                     \
                                  int64_t top, int64_t b, int64_t t0, T scale, const T *q,                   \
                                  const T *k, const T *v, const int64_t *chosen, const T *null_k,            \
                                  const T *null_v, T *out, T *p) {                                           \
        for (int64_t bh = 0; bh < n; ++bh) {                                                                 \
            const T *kt = k + bh * L * D, *vt = v + bh * L * D;                                              \
            const T *nk = null_k + (bh % H) * D, *nv = null_v + (bh % H) * D;                                \
            for (int64_t i = 0; i < c; ++i) {                                                                \
                const T *qi = q + (bh * c + i) * D;                                                          \
                const int64_t *pick = chosen + (bh * c + i) * top;                                           \
                T *o = out + (bh * c + i) * D;                                                               \
                probs_##SUF(qi, kt, pick, nk, t0 + i, top, b, D, scale, p);                                  \
                for (int64_t d = 0; d < D; ++d) o[d] = p[0] * nv[d];                                         \
                for (int64_t r = 0; r < top; ++r)                                                            \
                    for (int64_t u = 0; u < b; ++u)                                                          \
                        if (p[1 + r * b + u] != 0)                                                           \
                            axpy_##SUF(o, p[1 + r * b + u], vt + (pick[r] * b + u) * D, D);                  \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
                                                                                                             \
    /* Adds the gradients into dq, dk, dv, dnull_k and dnull_v (p: scratch of 2 * (1 + k * b)). */           \
    void pam_select_backward_##SUF(int64_t n, int64_t H, int64_t c, int64_t D, int64_t L,                    \
                                   int64_t top, int64_t b, int64_t t0, T scale, const T *q,                  \
                                   const T *k, const T *v, const int64_t *chosen, const T *null_k,           \
                                   const T *null_v, const T *dout, T *dq, T *dk, T *dv, T *dnull_k,          \
                                   T *dnull_v, T *p) {                                                       \
        T *dp = p + 1 + top * b;                                                                             \
        for (int64_t bh = 0; bh < n; ++bh) {                                                                 \
            const T *kt = k + bh * L * D, *vt = v + bh * L * D;                                              \
            T *dkt = dk + bh * L * D, *dvt = dv + bh * L * D;                                                \
            const T *nk = null_k + (bh % H) * D, *nv = null_v + (bh % H) * D;                                \
            T *dnk = dnull_k + (bh % H) * D, *dnv = dnull_v + (bh % H) * D;                                  \
            for (int64_t i = 0; i < c; ++i) {                                                                \
                const T *qi = q + (bh * c + i) * D, *doi = dout + (bh * c + i) * D;                          \
                const int64_t *pick = chosen + (bh * c + i) * top;                                           \
                T *dqi = dq + (bh * c + i) * D;                                                              \
                probs_##SUF(qi, kt, pick, nk, t0 + i, top, b, D, scale, p);                                  \
                T mean = p[0] * (dp[0] = dot_##SUF(doi, nv, D));                                             \
                for (int64_t r = 0; r < top; ++r)                                                            \
                    for (int64_t u = 0; u < b; ++u) {                                                        \
                        int64_t j = 1 + r * b + u;                                                           \
                        dp[j] = p[j] != 0 ? dot_##SUF(doi, vt + (pick[r] * b + u) * D, D) : 0;               \
                        mean += p[j] * dp[j];                                                                \
                    }                                                                                        \
                T ds = p[0] * (dp[0] - mean) * scale;                                                        \
                axpy_##SUF(dqi, ds, nk, D);                                                                  \
                axpy_##SUF(dnk, ds, qi, D);                                                                  \
                axpy_##SUF(dnv, p[0], doi, D);                                                               \
                for (int64_t r = 0; r < top; ++r)                                                            \
                    for (int64_t u = 0; u < b; ++u) {                                                        \
                        int64_t j = 1 + r * b + u, row = (pick[r] * b + u) * D;                              \
                        if (p[j] == 0) continue;                                                             \
                        ds = p[j] * (dp[j] - mean) * scale;                                                  \
                        axpy_##SUF(dqi, ds, kt + row, D);                                                    \
                        axpy_##SUF(dkt + row, ds, qi, D);                                                    \
                        axpy_##SUF(dvt + row, p[j], doi, D);                                                 \
                    }                                                                                        \
            }                                                                                                \
        }                                                                                                    \
    }

/* Each query's top-k blocks by score among the blocks complete in its past (scores (n, c, nb)),
   highest first, the lower index first among equal scores; where fewer than k are complete, the
   first incomplete blocks fill the rest (the branch masks them). */
#define PAM_CHOOSE(T, SUF)                                                                                   \
    void pam_select_choose_##SUF(int64_t n, int64_t c, int64_t nb, int64_t top, int64_t b,                   \
                                 int64_t t0, const T *scores, int64_t *chosen) {                             \
        T best[top > 0 ? top : 1];                                                                           \
        for (int64_t row = 0; row < n * c; ++row) {                                                          \
            const T *s = scores + row * nb;                                                                  \
            int64_t *pick = chosen + row * top, seen = (t0 + row % c + 1) / b, kept = 0;                     \
            if (seen > nb) seen = nb;                                                                        \
            for (int64_t j = 0; j < seen; ++j) {                                                             \
                if (kept == top && !(s[j] > best[top - 1])) continue; /* most blocks: one test */            \
                int64_t at = kept < top ? kept++ : top - 1;                                                  \
                for (; at > 0 && s[j] > best[at - 1]; --at) {                                                \
                    best[at] = best[at - 1];                                                                 \
                    pick[at] = pick[at - 1];                                                                 \
                }                                                                                            \
                best[at] = s[j];                                                                             \
                pick[at] = j;                                                                                \
            }                                                                                                \
            for (int64_t j = seen; kept < top; ++j) pick[kept++] = j;                                        \
        }                                                                                                    \
    }

PAM_SELECT(float, f32, expf)
PAM_SELECT(double, f64, exp)
PAM_CHOOSE(float, f32)
PAM_CHOOSE(double, f64)

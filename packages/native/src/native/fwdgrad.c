/*
 * fwdgrad native kernels: float32 kernels for TensorFlow.js's cpu backend, exposed through Node-API.
 *
 * The JavaScript side (src/kernels.ts) owns every allocation: it passes Float32Arrays (input and output
 * buffers) plus plain integers, and this file only computes. Matrix products go to a system BLAS
 * (cblas_sgemm, found with dlopen at load time: OpenBLAS, then the generic libblas.so.3 / libcblas); when
 * none is found a built-in blocked product is used. Elementwise, reduction and transpose loops are
 * written so that gcc -O3 vectorises their innermost loops, and split across threads (OpenMP) when they
 * are large enough for the split to pay.
 */
#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SCHED_IDLE */
#endif
#include <node_api.h>
#include <sched.h>
#include <dlfcn.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------------------------------------ */
/* BLAS through dlopen                                                                              */

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);

static sgemm_fn blas_sgemm = NULL;
static set_threads_fn blas_set_threads = NULL;
static get_threads_fn blas_get_threads = NULL;
static char blas_name[256] = "";
static int n_threads = 1;

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

static void load_blas(const char *preferred) {
  const char *candidates[] = {preferred,
                              "libopenblas.so.0",
                              "libopenblas.so",
                              "libopenblasp-r0.so",
                              "libblis.so.4",
                              "libmkl_rt.so",
                              "libcblas.so.3",
                              "libblas.so.3",
                              "libopenblas.dylib",
                              "/System/Library/Frameworks/Accelerate.framework/Accelerate",
                              NULL};
  for (int i = 0; i < (int)(sizeof(candidates) / sizeof(candidates[0])); i++) {
    const char *name = candidates[i];
    if (name == NULL || name[0] == '\0') continue;
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) continue;
    sgemm_fn f = (sgemm_fn)dlsym(h, "cblas_sgemm");
    if (f == NULL) {
      dlclose(h);
      continue;
    }
    blas_sgemm = f;
    blas_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    if (blas_set_threads == NULL) blas_set_threads = (set_threads_fn)dlsym(h, "bli_thread_set_num_threads");
    blas_get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    strncpy(blas_name, name, sizeof(blas_name) - 1);
    return;
  }
}

/* Built-in product for machines without a BLAS: C[m,n] (+)= op(A)[m,k] op(B)[k,n], row-major. Operands
 * are first packed so that the inner loop runs over contiguous rows of B (vectorised by the compiler). */
static void builtin_sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                          int ldb, float beta, float *c, int ldc) {
  float *bp = NULL;
  if (tb) {
    bp = (float *)malloc(sizeof(float) * (size_t)k * n);
    for (int j = 0; j < n; j++)
      for (int p = 0; p < k; p++) bp[(size_t)p * n + j] = b[(size_t)j * ldb + p];
    b = bp;
    ldb = n;
  }
#pragma omp parallel for schedule(static) if ((size_t)m * n * k > (1u << 18) && n_threads > 1) num_threads(n_threads)
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (beta == 0.0f)
      memset(ci, 0, sizeof(float) * n);
    for (int p = 0; p < k; p++) {
      float av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
      const float *bk = b + (size_t)p * ldb;
      for (int j = 0; j < n; j++) ci[j] += av * bk[j];
    }
  }
  free(bp);
}

/* Products below this many multiply-adds run on one BLAS thread: OpenBLAS 0.3.21 splits even a
 * 128x512x10 product across threads, and waking them cost 0.5 ms per call here (25 us single). */
#define GEMM_PAR_MIN (4 * 1024 * 1024)
static int blas_current_threads = -1;

/* >0 while a product or a draw runs on several threads (process-wide, as the BLAS threads are): the
 * normals' draw-ahead threads (below) pause between blocks meanwhile. At SCHED_IDLE they still slowed a
 * 2-thread product running beside them by about their own work (a JVP of a 784-256-256-10 MLP at batch
 * 128: 3.24 instead of 2.74 ms while a 269K-draw request was drawn ahead), so they now draw only while
 * the kernels leave the second core alone (single-threaded kernels, JavaScript). */
static int parallel_kernels = 0;
/* draw-ahead threads waiting for parallel_kernels to reach 0, and how they are woken */
static int parallel_waiters = 0;
static pthread_mutex_t parallel_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parallel_done = PTHREAD_COND_INITIALIZER;

static void parallel_wake(void) {
  pthread_mutex_lock(&parallel_mu);
  pthread_cond_broadcast(&parallel_done);
  pthread_mutex_unlock(&parallel_mu);
}
#define PARALLEL_BEGIN(on)                                                                                \
  if (on) __atomic_add_fetch(&parallel_kernels, 1, __ATOMIC_SEQ_CST)
#define PARALLEL_END(on)                                                                                  \
  if ((on) && __atomic_sub_fetch(&parallel_kernels, 1, __ATOMIC_SEQ_CST) == 0 &&                          \
      __atomic_load_n(&parallel_waiters, __ATOMIC_SEQ_CST) > 0)                                            \
  parallel_wake()

/* Waits while a parallel kernel runs (or until *cancel is set; whoever sets it calls parallel_wake). */
static void parallel_wait(const int *cancel) {
  if (__atomic_load_n(&parallel_kernels, __ATOMIC_SEQ_CST) == 0) return;
  pthread_mutex_lock(&parallel_mu);
  __atomic_add_fetch(&parallel_waiters, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&parallel_kernels, __ATOMIC_SEQ_CST) > 0 && !__atomic_load_n(cancel, __ATOMIC_SEQ_CST))
    pthread_cond_wait(&parallel_done, &parallel_mu);
  __atomic_sub_fetch(&parallel_waiters, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&parallel_mu);
}

static void sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc) {
  if (blas_set_threads != NULL) {
    int want = (double)m * n * k >= GEMM_PAR_MIN ? n_threads : 1;
    if (want != blas_current_threads) {
      blas_set_threads(want);
      blas_current_threads = want;
    }
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.0f)
      for (int i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, sizeof(float) * n);
    return;
  }
  /* on several threads: BLAS products from GEMM_PAR_MIN, the built-in one's OpenMP loop from 2^18 */
  double work = (double)m * n * k;
  int several = n_threads > 1 && (blas_sgemm != NULL ? work >= GEMM_PAR_MIN : work > (double)(1u << 18));
  PARALLEL_BEGIN(several);
  if (blas_sgemm != NULL)
    blas_sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
               ldc);
  else
    builtin_sgemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
  PARALLEL_END(several);
}

/* ------------------------------------------------------------------------------------------------ */
/* Node-API helpers                                                                                 */

#define CHECK(call)                                                                                     \
  do {                                                                                                  \
    if ((call) != napi_ok) {                                                                            \
      napi_throw_error(env, NULL, "fwdgrad native: Node-API call failed: " #call);                      \
      return NULL;                                                                                      \
    }                                                                                                   \
  } while (0)

/* The data of a typed array of the wanted type (throws a TypeError naming `what` otherwise). */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *what, void **data,
                     size_t *len) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok || type != want) {
    char msg[96];
    snprintf(msg, sizeof(msg), "fwdgrad native: expected a %s", what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  if (len) *len = length;
  return 1;
}

static int get_f32(napi_env env, napi_value v, float **data, size_t *len) {
  return get_typed(env, v, napi_float32_array, "Float32Array", (void **)data, len);
}

static int get_i32_array(napi_env env, napi_value v, int32_t **data, size_t *len) {
  return get_typed(env, v, napi_int32_array, "Int32Array", (void **)data, len);
}

/* Declares argv[n] and reads the call's arguments into it (a function's first line). */
#define ARGS(n)                                                                                         \
  size_t argc = (n);                                                                                    \
  napi_value argv[(n)];                                                                                 \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static int64_t get_int(napi_env env, napi_value v) {
  int64_t x = 0;
  napi_get_value_int64(env, v, &x);
  return x;
}

static double get_double(napi_env env, napi_value v) {
  double x = 0;
  napi_get_value_double(env, v, &x);
  return x;
}

/* Elements below which a loop stays on one thread. Waking sleeping OpenMP workers costs tens of
 * microseconds, and on small machines they compete with the BLAS threads and the JavaScript thread:
 * measured on 2 cores, a LocalMixer step ran 45% slower with a 32K threshold than single-threaded. */
static int64_t PAR_MIN = 1 << 21;

/* ------------------------------------------------------------------------------------------------ */
/* gemm(a, b, out, batch, m, n, k, transA, transB, aBatchStride, bBatchStride, bias|null, biasLen, act)
 * out[batch, m, n] = op(a[i]) op(b[i]) (+ bias broadcast over the last axis when biasLen == n, or a
 * scalar when biasLen == 1), then act: 0 linear, 1 relu. */
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  ARGS(14);
  float *a, *b, *c, *bias = NULL;
  size_t la, lb, lc;
  if (!get_f32(env, argv[0], &a, &la) || !get_f32(env, argv[1], &b, &lb) || !get_f32(env, argv[2], &c, &lc))
    return NULL;
  int batch = (int)get_int(env, argv[3]), m = (int)get_int(env, argv[4]), n = (int)get_int(env, argv[5]),
      k = (int)get_int(env, argv[6]);
  bool ta, tb;
  napi_get_value_bool(env, argv[7], &ta);
  napi_get_value_bool(env, argv[8], &tb);
  int64_t sa = get_int(env, argv[9]), sb = get_int(env, argv[10]);
  napi_valuetype bt;
  napi_typeof(env, argv[11], &bt);
  if (bt != napi_null && bt != napi_undefined && !get_f32(env, argv[11], &bias, NULL)) return NULL;
  int biasLen = (int)get_int(env, argv[12]);
  int act = (int)get_int(env, argv[13]);
  if ((size_t)batch * m * n > lc || (batch > 0 && (size_t)(sa * (batch - 1)) + (size_t)m * k > la) ||
      (batch > 0 && (size_t)(sb * (batch - 1)) + (size_t)k * n > lb)) {
    napi_throw_range_error(env, NULL, "fwdgrad native gemm: buffer too small for the given sizes");
    return NULL;
  }
  int lda = ta ? m : k, ldb = tb ? k : n;
  for (int i = 0; i < batch; i++)
    sgemm(ta, tb, m, n, k, a + sa * i, lda, b + sb * i, ldb, 0.0f, c + (size_t)i * m * n, n);
  size_t rows = (size_t)batch * m;
  if (bias != NULL || act != 0) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN * 2 && n_threads > 1) num_threads(n_threads)
    for (size_t r = 0; r < rows; r++) {
      float *cr = c + r * n;
      if (bias != NULL) {
        if (biasLen == n)
          for (int j = 0; j < n; j++) cr[j] += bias[j];
        else
          for (int j = 0; j < n; j++) cr[j] += bias[0];
      }
      if (act == 1)
        for (int j = 0; j < n; j++) cr[j] = cr[j] < 0.0f ? 0.0f : cr[j];
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* binary(op, a, b, out, shape, aStrides, bStrides): out has the (collapsed) shape; a and b are read
 * through strides (0 on broadcast axes). ops: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 squared
 * difference, 7 pow, 8 copy a (b unused: tile and broadcast copies). */

#define BIN_OPS(X)                                                                                       \
  X(0, x + y)                                                                                           \
  X(1, x - y)                                                                                           \
  X(2, x * y)                                                                                           \
  X(3, x / y)                                                                                           \
  X(4, (x > y || isnan(x)) ? x : y)                                                                     \
  X(5, (x < y || isnan(x)) ? x : y)                                                                     \
  X(6, (x - y) * (x - y))                                                                               \
  X(7, powf(x, y))                                                                                      \
  X(8, x)

#define MAXDIM 8

/* One function per op: the operator is a compile-time expression inside the loops (vectorised), and
 * the outer axes advance as an odometer (no division per row). Rows [r0, r1) of the collapsed shape. */
#define DEF_BIN(code, expr)                                                                             \
  static void bin_##code(int rank, const int32_t *shape, const int32_t *sa, const int32_t *sb,         \
                         const float *a, const float *b, float *o, int64_t r0, int64_t r1) {           \
    int64_t inner = shape[rank - 1], isa = sa[rank - 1], isb = sb[rank - 1];                           \
    int64_t idx[MAXDIM] = {0}, oa = 0, ob = 0, rem = r0;                                               \
    for (int d = rank - 2; d >= 0; d--) {                                                              \
      idx[d] = rem % shape[d];                                                                         \
      rem /= shape[d];                                                                                 \
      oa += idx[d] * sa[d];                                                                            \
      ob += idx[d] * sb[d];                                                                            \
    }                                                                                                  \
    for (int64_t r = r0; r < r1; r++) {                                                                \
      const float *ap = a + oa, *bp = b + ob;                                                          \
      float *out = o + r * inner;                                                                      \
      if (isa == 1 && isb == 1) {                                                                      \
        for (int64_t j = 0; j < inner; j++) {                                                          \
          float x = ap[j], y = bp[j];                                                                  \
          out[j] = expr;                                                                               \
        }                                                                                              \
      } else if (isa == 1 && isb == 0) {                                                               \
        float y = bp[0];                                                                               \
        for (int64_t j = 0; j < inner; j++) {                                                          \
          float x = ap[j];                                                                             \
          out[j] = expr;                                                                               \
        }                                                                                              \
      } else if (isa == 0 && isb == 1) {                                                               \
        float x = ap[0];                                                                               \
        for (int64_t j = 0; j < inner; j++) {                                                          \
          float y = bp[j];                                                                             \
          out[j] = expr;                                                                               \
        }                                                                                              \
      } else {                                                                                         \
        for (int64_t j = 0; j < inner; j++) {                                                          \
          float x = ap[j * isa], y = bp[j * isb];                                                      \
          out[j] = expr;                                                                               \
        }                                                                                              \
      }                                                                                                \
      for (int d = rank - 2; d >= 0; d--) {                                                            \
        oa += sa[d];                                                                                   \
        ob += sb[d];                                                                                   \
        if (++idx[d] < shape[d]) break;                                                                \
        oa -= (int64_t)sa[d] * shape[d];                                                               \
        ob -= (int64_t)sb[d] * shape[d];                                                               \
        idx[d] = 0;                                                                                    \
      }                                                                                                \
    }                                                                                                  \
  }
BIN_OPS(DEF_BIN)
#undef DEF_BIN

typedef void (*bin_fn)(int, const int32_t *, const int32_t *, const int32_t *, const float *, const float *,
                       float *, int64_t, int64_t);
#define BIN_ENTRY(code, expr) bin_##code,
static const bin_fn BIN_FNS[] = {BIN_OPS(BIN_ENTRY)};
#undef BIN_ENTRY
#define N_BIN_OPS ((int)(sizeof(BIN_FNS) / sizeof(BIN_FNS[0])))

static napi_value js_binary(napi_env env, napi_callback_info info) {
  ARGS(7);
  int op = (int)get_int(env, argv[0]);
  float *a, *b, *o;
  int32_t *shape, *sa, *sb;
  size_t rank, r2, r3;
  if (!get_f32(env, argv[1], &a, NULL) || !get_f32(env, argv[2], &b, NULL) || !get_f32(env, argv[3], &o, NULL) ||
      !get_i32_array(env, argv[4], &shape, &rank) || !get_i32_array(env, argv[5], &sa, &r2) ||
      !get_i32_array(env, argv[6], &sb, &r3))
    return NULL;
  if (rank == 0 || rank > MAXDIM || r2 != rank || r3 != rank || op < 0 || op >= N_BIN_OPS) {
    napi_throw_range_error(env, NULL, "fwdgrad native binary: rank must be 1..8 with matching strides, op known");
    return NULL;
  }
  bin_fn f = BIN_FNS[op];
  int64_t inner = shape[rank - 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < rank; d++) rows *= shape[d];
  int chunks = rows * inner > PAR_MIN && rows > 1 && n_threads > 1 ? n_threads : 1;
  if (chunks > rows) chunks = (int)rows;
#pragma omp parallel for schedule(static) if (chunks > 1) num_threads(chunks)
  for (int c = 0; c < chunks; c++) f((int)rank, shape, sa, sb, a, b, o, rows * c / chunks, rows * (c + 1) / chunks);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* unary(op, x, out, alpha, n) */

static napi_value js_unary(napi_env env, napi_callback_info info) {
  ARGS(4);
  int op = (int)get_int(env, argv[0]);
  float *x, *o;
  size_t n, no;
  if (!get_f32(env, argv[1], &x, &n) || !get_f32(env, argv[2], &o, &no)) return NULL;
  float alpha = (float)get_double(env, argv[3]);
  if (no < n) n = no;
  int64_t N = (int64_t)n;
  int par = N > PAR_MIN && n_threads > 1;
#define UN(code, expr)                                                                                  \
  case code:                                                                                            \
    _Pragma("omp parallel for schedule(static) if (par) num_threads(n_threads)") for (int64_t i = 0;   \
                                                                                       i < N; i++) {    \
      float v = x[i];                                                                                   \
      o[i] = expr;                                                                                      \
    }                                                                                                   \
    break;
  switch (op) {
    UN(0, expf(v))
    UN(1, logf(v))
    UN(2, -v)
    UN(3, sqrtf(v))
    UN(4, 1.0f / sqrtf(v))
    UN(5, v * v)
    UN(6, v < 0.0f ? 0.0f : v) /* as tfjs: NaN and -0 pass through */
    UN(7, v > 0.0f ? 1.0f : (isnan(v) ? v : alpha))
    UN(8, fabsf(v))
    UN(9, 1.0f / (1.0f + expf(-v)))
    UN(10, tanhf(v))
    UN(11, 1.0f / v)
    UN(12, log1pf(v))
    UN(13, v * alpha)
    default:
      napi_throw_range_error(env, NULL, "fwdgrad native unary: unknown op");
  }
#undef UN
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* reduce(op, x, out, outer, r, inner): out[o, i] = reduce_j x[o, j, i]. ops: 0 sum, 1 mean, 2 max,
 * 3 min, 4 prod. Sums accumulate in double (as tfjs's cpu kernels do in JavaScript numbers). */

static napi_value js_reduce(napi_env env, napi_callback_info info) {
  ARGS(6);
  int op = (int)get_int(env, argv[0]);
  float *x, *o;
  if (!get_f32(env, argv[1], &x, NULL) || !get_f32(env, argv[2], &o, NULL)) return NULL;
  int64_t outer = get_int(env, argv[3]), R = get_int(env, argv[4]), inner = get_int(env, argv[5]);
  int par = outer * R * inner > PAR_MIN && n_threads > 1;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (par && outer > 1) num_threads(n_threads)
    for (int64_t i = 0; i < outer; i++) {
      const float *xi = x + i * R;
      if (op <= 1) {
        /* four double accumulators keep the loop short without changing the rounding much */
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t j = 0;
        for (; j + 4 <= R; j += 4) {
          s0 += xi[j];
          s1 += xi[j + 1];
          s2 += xi[j + 2];
          s3 += xi[j + 3];
        }
        for (; j < R; j++) s0 += xi[j];
        double s = (s0 + s1) + (s2 + s3);
        o[i] = (float)(op == 1 ? s / (double)R : s);
      } else if (op == 4) {
        double p = 1;
        for (int64_t j = 0; j < R; j++) p *= xi[j];
        o[i] = (float)p;
      } else {
        float m = R > 0 ? xi[0] : (op == 2 ? -INFINITY : INFINITY);
        for (int64_t j = 1; j < R; j++) {
          float v = xi[j];
          if (op == 2 ? (v > m || isnan(v)) : (v < m || isnan(v))) m = v;
        }
        o[i] = m;
      }
    }
    return NULL;
  }
#pragma omp parallel for schedule(static) if (par && outer > 1) num_threads(n_threads)
  for (int64_t i = 0; i < outer; i++) {
    float *oi = o + i * inner;
    const float *xi = x + i * R * inner;
    if (op <= 1 || op == 4) {
      double *acc = (double *)malloc(sizeof(double) * inner);
      for (int64_t t = 0; t < inner; t++) acc[t] = op == 4 ? 1.0 : 0.0;
      for (int64_t j = 0; j < R; j++) {
        const float *row = xi + j * inner;
        if (op == 4)
          for (int64_t t = 0; t < inner; t++) acc[t] *= row[t];
        else
          for (int64_t t = 0; t < inner; t++) acc[t] += row[t];
      }
      for (int64_t t = 0; t < inner; t++) oi[t] = (float)(op == 1 ? acc[t] / (double)R : acc[t]);
      free(acc);
    } else {
      if (R == 0) {
        for (int64_t t = 0; t < inner; t++) oi[t] = op == 2 ? -INFINITY : INFINITY;
        continue;
      }
      memcpy(oi, xi, sizeof(float) * inner);
      for (int64_t j = 1; j < R; j++) {
        const float *row = xi + j * inner;
        if (op == 2)
          for (int64_t t = 0; t < inner; t++) oi[t] = (row[t] > oi[t] || isnan(row[t])) ? row[t] : oi[t];
        else
          for (int64_t t = 0; t < inner; t++) oi[t] = (row[t] < oi[t] || isnan(row[t])) ? row[t] : oi[t];
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* transpose(x, out, shape, perm): generic permutation of a (collapsed) tensor. The common
 * "swap the last two axes" case runs as blocked 2-D transposes. */

/* 16×16 tiles, the inner loop writing contiguously: writing down a column of the output instead
 * (stride rows·4 bytes) is up to 20× slower when rows is a power of two (L1 set conflicts: a
 * [512, 64] → [64, 512] transpose took 2.3 ms per MiB-sized batch, now 0.23). */
static void transpose2d(const float *x, float *o, int64_t rows, int64_t cols) {
  const int64_t T = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += T)
    for (int64_t j0 = 0; j0 < cols; j0 += T) {
      int64_t i1 = i0 + T < rows ? i0 + T : rows, j1 = j0 + T < cols ? j0 + T : cols;
      for (int64_t j = j0; j < j1; j++)
        for (int64_t i = i0; i < i1; i++) o[j * rows + i] = x[i * cols + j];
    }
}

static napi_value js_transpose(napi_env env, napi_callback_info info) {
  ARGS(4);
  float *x, *o;
  int32_t *shape, *perm;
  size_t rank, r2;
  if (!get_f32(env, argv[0], &x, NULL) || !get_f32(env, argv[1], &o, NULL) ||
      !get_i32_array(env, argv[2], &shape, &rank) || !get_i32_array(env, argv[3], &perm, &r2))
    return NULL;
  if (rank == 0 || rank > MAXDIM || r2 != rank) {
    napi_throw_range_error(env, NULL, "fwdgrad native transpose: rank must be 1..8");
    return NULL;
  }
  int64_t inStride[MAXDIM], outShape[MAXDIM], srcStride[MAXDIM];
  inStride[rank - 1] = 1;
  for (int d = (int)rank - 2; d >= 0; d--) inStride[d] = inStride[d + 1] * shape[d + 1];
  int64_t total = 1;
  for (size_t d = 0; d < rank; d++) {
    outShape[d] = shape[perm[d]];
    srcStride[d] = inStride[perm[d]];
    total *= outShape[d];
  }
  /* batch of 2-D transposes: perm = [0..r-3, r-1, r-2] */
  int swapLast = rank >= 2 && perm[rank - 1] == (int)rank - 2 && perm[rank - 2] == (int)rank - 1;
  for (size_t d = 0; d + 2 < rank && swapLast; d++)
    if (perm[d] != (int)d) swapLast = 0;
  if (swapLast) {
    int64_t rows = shape[rank - 2], cols = shape[rank - 1];
    int64_t batch = rows * cols == 0 ? 0 : total / (rows * cols);
#pragma omp parallel for schedule(static) if (total > PAR_MIN && batch > 1 && n_threads > 1) num_threads(n_threads)
    for (int64_t i = 0; i < batch; i++) transpose2d(x + i * rows * cols, o + i * rows * cols, rows, cols);
    return NULL;
  }
  int64_t inner = outShape[rank - 1], istride = srcStride[rank - 1];
  int64_t rows = inner == 0 ? 0 : total / inner;
#pragma omp parallel for schedule(static) if (total > PAR_MIN && rows > 1 && n_threads > 1) num_threads(n_threads)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, src = 0;
    for (int d = (int)rank - 2; d >= 0; d--) {
      int64_t i = rem % outShape[d];
      rem /= outShape[d];
      src += i * srcStride[d];
    }
    float *orow = o + r * inner;
    const float *xs = x + src;
    if (istride == 1)
      memcpy(orow, xs, sizeof(float) * inner);
    else
      for (int64_t j = 0; j < inner; j++) orow[j] = xs[j * istride];
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* softmax(x, out, rows, cols): numerically stable softmax over the last axis. */

static napi_value js_softmax(napi_env env, napi_callback_info info) {
  ARGS(4);
  float *x, *o;
  if (!get_f32(env, argv[0], &x, NULL) || !get_f32(env, argv[1], &o, NULL)) return NULL;
  int64_t rows = get_int(env, argv[2]), cols = get_int(env, argv[3]);
#pragma omp parallel for schedule(static) if (rows * cols > PAR_MIN && n_threads > 1) num_threads(n_threads)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *orow = o + r * cols;
    float m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) {
      orow[j] = expf(xr[j] - m);
      s += orow[j];
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < cols; j++) orow[j] *= inv;
  }
  return NULL;
}

/* layerNorm(x, y, r, outer, n, inner, eps): x viewed as [outer, n, inner], statistics over n:
 * y = (x − μ)·r, r = 1/√(E[x²] − μ² + ε) of shape [outer, inner] — the same formula and float32 steps as
 * @fwdgrad/jvp-core's composite layer norm (sums in double, in the order j = 0..n−1). inner == 1 is the
 * last axis (one row at a time); inner > 1 (e.g. token mixing's channel axis of x[N, C, P]) keeps `inner`
 * running sums and walks x in memory order, so the inner loops are contiguous and vectorise. */
static napi_value js_layer_norm(napi_env env, napi_callback_info info) {
  ARGS(7);
  float *x, *y, *r;
  if (!get_f32(env, argv[0], &x, NULL) || !get_f32(env, argv[1], &y, NULL) || !get_f32(env, argv[2], &r, NULL))
    return NULL;
  int64_t outer = get_int(env, argv[3]), n = get_int(env, argv[4]), inner = get_int(env, argv[5]);
  float eps = (float)get_double(env, argv[6]);
  if (inner == 1) {
    int64_t rows = outer;
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN && n_threads > 1) num_threads(n_threads)
    for (int64_t i = 0; i < rows; i++) {
      const float *xi = x + i * n;
      float *yi = y + i * n;
      double s = 0, sq = 0;
      for (int64_t j = 0; j < n; j++) {
        s += xi[j];
        sq += (double)(xi[j] * xi[j]);
      }
      float mean = (float)(s / (double)n), meansq = (float)(sq / (double)n);
      float var = meansq - mean * mean;
      float ri = 1.0f / sqrtf(var + eps);
      r[i] = ri;
      for (int64_t j = 0; j < n; j++) yi[j] = (xi[j] - mean) * ri;
    }
    return NULL;
  }
#pragma omp parallel for schedule(static) if (outer * n * inner > PAR_MIN && outer > 1 && n_threads > 1) num_threads(n_threads)
  for (int64_t o = 0; o < outer; o++) {
    const float *xo = x + o * n * inner;
    float *yo = y + o * n * inner, *ro = r + o * inner;
    double *acc = (double *)malloc(sizeof(double) * 2 * inner);
    float *mean = (float *)malloc(sizeof(float) * inner);
    double *s = acc, *sq = acc + inner;
    for (int64_t i = 0; i < inner; i++) s[i] = sq[i] = 0;
    for (int64_t j = 0; j < n; j++) {
      const float *xj = xo + j * inner;
      for (int64_t i = 0; i < inner; i++) {
        s[i] += xj[i];
        sq[i] += (double)(xj[i] * xj[i]);
      }
    }
    for (int64_t i = 0; i < inner; i++) {
      float m = (float)(s[i] / (double)n), meansq = (float)(sq[i] / (double)n);
      float var = meansq - m * m;
      mean[i] = m;
      ro[i] = 1.0f / sqrtf(var + eps);
    }
    for (int64_t j = 0; j < n; j++) {
      const float *xj = xo + j * inner;
      float *yj = yo + j * inner;
      for (int64_t i = 0; i < inner; i++) yj[i] = (xj[i] - mean[i]) * ro[i];
    }
    free(mean);
    free(acc);
  }
  return NULL;
}

/* layerNormJvp(t, y, r, out, k, outer, n, inner): out = r·((t − E[t]) − y·E[y·t]) with expectations over
 * n, for k stacked tangents t [k, outer, n, inner] sharing y [outer, n, inner] and r [outer, inner]. The
 * layer norm's Jacobian is symmetric, so this is also its vector-Jacobian product. */
static napi_value js_layer_norm_jvp(napi_env env, napi_callback_info info) {
  ARGS(8);
  float *t, *y, *r, *o;
  if (!get_f32(env, argv[0], &t, NULL) || !get_f32(env, argv[1], &y, NULL) || !get_f32(env, argv[2], &r, NULL) ||
      !get_f32(env, argv[3], &o, NULL))
    return NULL;
  int64_t k = get_int(env, argv[4]), outer = get_int(env, argv[5]), n = get_int(env, argv[6]),
          inner = get_int(env, argv[7]);
  int64_t total = k * outer;
  if (inner == 1) {
    int64_t rows = outer;
#pragma omp parallel for schedule(static) if (total * n > PAR_MIN && n_threads > 1) num_threads(n_threads)
    for (int64_t q = 0; q < total; q++) {
      int64_t i = q % rows;
      const float *tq = t + q * n, *yi = y + i * n;
      float *oq = o + q * n;
      double st = 0, syt = 0;
      for (int64_t j = 0; j < n; j++) {
        st += tq[j];
        syt += (double)(yi[j] * tq[j]);
      }
      float mt = (float)(st / (double)n), p = (float)(syt / (double)n), ri = r[i];
      for (int64_t j = 0; j < n; j++) oq[j] = ((tq[j] - mt) - yi[j] * p) * ri;
    }
    return NULL;
  }
#pragma omp parallel for schedule(static) if (total * n * inner > PAR_MIN && total > 1 && n_threads > 1) num_threads(n_threads)
  for (int64_t q = 0; q < total; q++) {
    int64_t i0 = q % outer;
    const float *tq = t + q * n * inner, *yq = y + i0 * n * inner, *rq = r + i0 * inner;
    float *oq = o + q * n * inner;
    double *acc = (double *)malloc(sizeof(double) * 2 * inner);
    float *mp = (float *)malloc(sizeof(float) * 2 * inner);
    double *st = acc, *syt = acc + inner;
    float *mt = mp, *p = mp + inner;
    for (int64_t i = 0; i < inner; i++) st[i] = syt[i] = 0;
    for (int64_t j = 0; j < n; j++) {
      const float *tj = tq + j * inner, *yj = yq + j * inner;
      for (int64_t i = 0; i < inner; i++) {
        st[i] += tj[i];
        syt[i] += (double)(yj[i] * tj[i]);
      }
    }
    for (int64_t i = 0; i < inner; i++) {
      mt[i] = (float)(st[i] / (double)n);
      p[i] = (float)(syt[i] / (double)n);
    }
    for (int64_t j = 0; j < n; j++) {
      const float *tj = tq + j * inner, *yj = yq + j * inner;
      float *oj = oq + j * inner;
      for (int64_t i = 0; i < inner; i++) oj[i] = ((tj[i] - mt[i]) - yj[i] * p[i]) * rq[i];
    }
    free(mp);
    free(acc);
  }
  return NULL;
}

/* groupedGemm(a, b, out, mode, m, g, ci, co): the grouped product of a layer with G independent maps,
 * as G strided products straight on the interleaved layouts (no transposes, no copies):
 *   mode 0 'nn': a[m, g, ci] · b[g, ci, co] → out[m, g, co]
 *   mode 1 'nt': a[m, g, co] · b[g, ci, co]ᵀ → out[m, g, ci]
 *   mode 2 'tn': a[m, g, ci]ᵀ · b[m, g, co], summed over m → out[g, ci, co]
 * Group h of a [m, g, c] is the matrix at a + h·c with leading dimension g·c. Each group's product goes
 * through sgemm (and so through its small-product single-thread rule). */
#define GROUPED_ROWS 128

static napi_value js_grouped_gemm(napi_env env, napi_callback_info info) {
  ARGS(8);
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!get_f32(env, argv[0], &a, &la) || !get_f32(env, argv[1], &b, &lb) || !get_f32(env, argv[2], &c, &lc))
    return NULL;
  int mode = (int)get_int(env, argv[3]);
  int64_t m = get_int(env, argv[4]), g = get_int(env, argv[5]), ci = get_int(env, argv[6]),
          co = get_int(env, argv[7]);
  size_t na, nb, nc;
  switch (mode) {
    case 0: na = m * g * ci; nb = g * ci * co; nc = m * g * co; break;
    case 1: na = m * g * co; nb = g * ci * co; nc = m * g * ci; break;
    case 2: na = m * g * ci; nb = m * g * co; nc = g * ci * co; break;
    default:
      napi_throw_range_error(env, NULL, "fwdgrad native groupedGemm: mode must be 0 (nn), 1 (nt) or 2 (tn)");
      return NULL;
  }
  if (m < 0 || g < 0 || ci < 0 || co < 0 || na > la || nb > lb || nc > lc) {
    napi_throw_range_error(env, NULL, "fwdgrad native groupedGemm: buffer too small for the given sizes");
    return NULL;
  }
  /* Rows in blocks of GROUPED_ROWS, all groups per block: the block of a (and of out) stays in cache while
   * its G strided products run, where one pass per group would stream all of a G times at a stride of
   * G·c floats (measured on [2048, 16, 32]·[16, 32, 32], one thread: 0.91 ms unblocked, 0.79 ms in blocks
   * of 128 rows, 0.65 ms for the same product on contiguous operands). Products big enough for several
   * BLAS threads are left whole. In 'tn' the blocks accumulate (beta = 1 after the first). */
  int64_t mb = m;
  if (m > GROUPED_ROWS && (n_threads == 1 || (double)m * ci * co < GEMM_PAR_MIN)) mb = GROUPED_ROWS;
  int64_t blocks = m == 0 ? 1 : (m + mb - 1) / mb;
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t m0 = blk * mb, mm = m - m0 < mb ? m - m0 : mb;
    for (int64_t h = 0; h < g; h++) {
      if (mode == 0)
        sgemm(0, 0, (int)mm, (int)co, (int)ci, a + (m0 * g + h) * ci, (int)(g * ci), b + h * ci * co, (int)co, 0.0f,
              c + (m0 * g + h) * co, (int)(g * co));
      else if (mode == 1)
        sgemm(0, 1, (int)mm, (int)ci, (int)co, a + (m0 * g + h) * co, (int)(g * co), b + h * ci * co, (int)co, 0.0f,
              c + (m0 * g + h) * ci, (int)(g * ci));
      else
        sgemm(1, 0, (int)ci, (int)co, (int)mm, a + (m0 * g + h) * ci, (int)(g * ci), b + (m0 * g + h) * co,
              (int)(g * co), blk == 0 ? 0.0f : 1.0f, c + h * ci * co, (int)co);
    }
  }
  return NULL;
}

/* addN(out, [x0, x1, ...]) */
static napi_value js_addn(napi_env env, napi_callback_info info) {
  ARGS(2);
  float *o;
  size_t n;
  if (!get_f32(env, argv[0], &o, &n)) return NULL;
  uint32_t count;
  CHECK(napi_get_array_length(env, argv[1], &count));
  memset(o, 0, sizeof(float) * n);
  for (uint32_t t = 0; t < count; t++) {
    napi_value v;
    float *x;
    size_t lx;
    CHECK(napi_get_element(env, argv[1], t, &v));
    if (!get_f32(env, v, &x, &lx)) return NULL;
    if (lx < n) {
      napi_throw_range_error(env, NULL, "fwdgrad native addN: inputs differ in size");
      return NULL;
    }
    for (size_t i = 0; i < n; i++) o[i] += x[i];
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* fillNormal(out, state, kn, wn, fn, r) -> state: the normal sampler of @fwdgrad/jvp-core's random.ts,
 * draw for draw. A request is cut into blocks of NORMAL_BLOCK draws; block b is the ziggurat on the
 * splitmix32 stream that starts at counter state + b·NORMAL_STRIDE (same integers, same rejections; the
 * tables come from JavaScript so they are bit-identical), and the request returns
 * state + blocks·NORMAL_STRIDE. Blocks are independent: large requests draw them on all threads. */

enum { NORMAL_BLOCK = 4096, NORMAL_STRIDE = 2 * NORMAL_BLOCK };
#define GOLDEN 0x9e3779b9u

static inline int32_t sm_next(uint32_t *state) {
  *state += GOLDEN;
  uint32_t z = *state;
  z = (z ^ (z >> 16)) * 0x21f0aaadu;
  z = (z ^ (z >> 15)) * 0x735a2d97u;
  return (int32_t)(z ^ (z >> 15));
}

static inline double sm_uniform(uint32_t *state) { return (double)(uint32_t)sm_next(state) / 4294967296.0; }

/* The ziggurat tables, copied from JavaScript on the first call (they never change). Process-wide and
 * shared by every JavaScript thread (worker_threads) that loads the addon: installed once under a lock,
 * read-only afterwards. */
static int32_t zkn[128];
static double zwn[128], zfn[128], zr;
static int ztables = 0;
static pthread_mutex_t ztables_mu = PTHREAD_MUTEX_INITIALIZER;

/* The slow path of a draw whose first integer `hz` failed the fast test; `state` is the counter after
 * hz. Consumes integers exactly as random.ts does; returns the counter after the draw. */
static uint32_t zig_slow(uint32_t state, int32_t hz, float *o) {
  int iz = hz & 127;
  for (;;) {
    if (iz == 0) {
      double x, y;
      do {
        x = -log(1 - sm_uniform(&state)) / zr;
        y = -log(1 - sm_uniform(&state));
      } while (y + y < x * x);
      *o = (float)(hz > 0 ? zr + x : -zr - x);
      return state;
    }
    double x = hz * zwn[iz];
    if (zfn[iz] + sm_uniform(&state) * (zfn[iz - 1] - zfn[iz]) < exp(-0.5 * x * x)) {
      *o = (float)x;
      return state;
    }
    hz = sm_next(&state);
    iz = hz & 127;
    if (llabs((long long)hz) < zkn[iz]) {
      *o = (float)(hz * zwn[iz]);
      return state;
    }
  }
}

/* One block: n ≤ NORMAL_BLOCK draws from counter `state`. splitmix32 is counter-based (the j-th next
 * integer is a pure function of state + j·GOLDEN), so the integers are hashed in a vectorisable loop
 * and the ziggurat's fast path (one integer per draw, ~98% of draws) runs over them; a slow path
 * consumes integers with sm_next, after which the fast path resumes at the next hashed integer. */
static void zig_block(uint32_t state, float *out, size_t n) {
  enum { H = NORMAL_BLOCK };
  int32_t hz[H];
  size_t i = 0;
  while (i < n) {
    size_t m = n - i < H ? n - i : H;
    for (size_t j = 0; j < m; j++) {
      uint32_t z = state + (uint32_t)(j + 1) * GOLDEN;
      z = (z ^ (z >> 16)) * 0x21f0aaadu;
      z = (z ^ (z >> 15)) * 0x735a2d97u;
      hz[j] = (int32_t)(z ^ (z >> 15));
    }
    size_t p = 0; /* integers of this batch consumed */
    while (p < m && i < n) {
      int32_t h = hz[p];
      int iz = h & 127;
      if (llabs((long long)h) < zkn[iz]) {
        out[i++] = (float)(h * zwn[iz]);
        p++;
        continue;
      }
      uint32_t at = state + (uint32_t)(p + 1) * GOLDEN;
      uint32_t after = zig_slow(at, h, out + i++);
      /* the slow path took (after − at)/GOLDEN more integers: skip them (GOLDEN is odd, so the
       * count is recovered with its inverse mod 2^32) */
      p += 1 + (size_t)((after - at) * 0x144cbc89u);
    }
    state += (uint32_t)p * GOLDEN;
  }
}

/* Blocks [b0, b1) of a request of n draws from counter `start`. */
static void zig_blocks(uint32_t start, float *out, size_t n, size_t b0, size_t b1, int threads) {
  int several = threads > 1 && b1 - b0 > 1;
  PARALLEL_BEGIN(several);
#pragma omp parallel for schedule(static) if (several) num_threads(threads)
  for (size_t b = b0; b < b1; b++) {
    size_t lo = b * NORMAL_BLOCK, len = n - lo < NORMAL_BLOCK ? n - lo : NORMAL_BLOCK;
    zig_block(start + (uint32_t)(b * NORMAL_STRIDE) * GOLDEN, out + lo, len);
  }
  PARALLEL_END(several);
}

static inline size_t zig_count(size_t n) { return (n + NORMAL_BLOCK - 1) / NORMAL_BLOCK; }

/* Draws ahead on a background thread, into the buffers that will hold the next requests' draws.
 * A training loop asks its stream for the same request at every step (FG-W: all of a model's
 * directions as one request; FG-A: one per site, usually of one size); after a request, JavaScript
 * hands over a buffer of the same size (prefetchInto) and the stream's next blocks are drawn into it
 * while the step computes. If a later request uses that buffer and starts at the counter where the
 * prefetched one starts, the finished blocks are kept and only the rest is drawn: no copy. Otherwise
 * everything is drawn anew. The stream is the same either way: block b of a request from counter s is
 * a function of s + b·stride alone.
 *
 * Up to PF_SLOTS buffers are drawn ahead at once (one job queue, oldest first), each for its own
 * (counter, size): requests for other buffers neither wait for nor discard them, so that rules or
 * streams that take turns (a benchmark timing several rules in turns, two models trained side by side)
 * each keep theirs. JavaScript chooses which slots to keep (nativeNormalFiller drops the oldest) and
 * stops one with prefetchCancel before it reuses its buffer. Most kernels of a step run on one
 * thread, so the second core is mostly free; the thread runs at SCHED_IDLE so that it never takes a
 * core from the BLAS or OpenMP threads.
 *
 * The state is per JavaScript environment (napi instance data): every worker thread that loads the addon
 * has its own drawing-ahead thread and buffers, so that stages training on worker threads neither share
 * nor race on them, and each one's draws depend only on its own requests. */
#define PF_SLOTS 4
enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_ACTIVE, SLOT_STOPPED };
typedef struct {
  uint32_t start;   /* counter of the first block */
  size_t n, blocks; /* draws and blocks asked for */
  float *buf;       /* the JavaScript buffer being filled */
  napi_ref ref;     /* keeps that buffer alive while the thread writes */
  int state;        /* SLOT_*, under the sampler's mutex */
  uint64_t seq;     /* queue order */
  int cancel;       /* set by the JavaScript thread: stop after the current block */
  size_t done;      /* blocks finished by the background thread */
} pf_slot_t;

typedef struct {
  pf_slot_t slot[PF_SLOTS];
  uint64_t seq;
  int enabled;
  int quit; /* set when the environment goes away: the thread ends */
  /* One worker thread, started on first use and woken per request (starting a thread per request cost
   * tens of µs, more than drawing a 65K request saves). */
  pthread_t worker;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t wake, idle;
} sampler_t;

/* The queued slot that was handed over first, or NULL (under mu). */
static pf_slot_t *pf_next_job(sampler_t *pf) {
  pf_slot_t *best = NULL;
  for (int i = 0; i < PF_SLOTS; i++)
    if (pf->slot[i].state == SLOT_QUEUED && (best == NULL || pf->slot[i].seq < best->seq)) best = &pf->slot[i];
  return best;
}

static void *pf_main(void *arg) {
  sampler_t *pf = arg;
#ifdef SCHED_IDLE
  struct sched_param idle = {0};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
#endif
  pthread_mutex_lock(&pf->mu);
  for (;;) {
    pf_slot_t *s;
    while ((s = pf_next_job(pf)) == NULL && !pf->quit) pthread_cond_wait(&pf->wake, &pf->mu);
    if (pf->quit) break;
    s->state = SLOT_ACTIVE;
    pthread_mutex_unlock(&pf->mu);
    for (size_t b = __atomic_load_n(&s->done, __ATOMIC_ACQUIRE); b < s->blocks; b++) {
      /* a multi-threaded kernel wants both cores: wait until it is done */
      parallel_wait(&s->cancel);
      if (__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE)) break;
      size_t lo = b * NORMAL_BLOCK, len = s->n - lo < NORMAL_BLOCK ? s->n - lo : NORMAL_BLOCK;
      zig_block(s->start + (uint32_t)(b * NORMAL_STRIDE) * GOLDEN, s->buf + lo, len);
      __atomic_store_n(&s->done, b + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_lock(&pf->mu);
    s->state = SLOT_STOPPED;
    pthread_cond_broadcast(&pf->idle);
  }
  pthread_mutex_unlock(&pf->mu);
  return NULL;
}

/* Stops slot s after the block the thread is drawing (a job not yet started is dropped) and waits until
 * the thread no longer touches its buffer; returns the blocks it finished. */
static size_t pf_stop(sampler_t *pf, pf_slot_t *s) {
  pthread_mutex_lock(&pf->mu);
  if (s->state == SLOT_QUEUED) s->state = SLOT_STOPPED;
  if (s->state == SLOT_ACTIVE) {
    __atomic_store_n(&s->cancel, 1, __ATOMIC_SEQ_CST);
    parallel_wake(); /* in case the thread waits for a parallel kernel */
    while (s->state == SLOT_ACTIVE) pthread_cond_wait(&pf->idle, &pf->mu);
  }
  pthread_mutex_unlock(&pf->mu);
  return __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
}

/* Forgets slot s (stopped first). */
static void pf_drop(napi_env env, sampler_t *pf, pf_slot_t *s) {
  if (s->state == SLOT_FREE) return;
  pf_stop(pf, s);
  if (s->ref != NULL) napi_delete_reference(env, s->ref);
  pthread_mutex_lock(&pf->mu);
  s->ref = NULL;
  s->buf = NULL;
  s->blocks = 0;
  s->done = 0;
  s->state = SLOT_FREE;
  pthread_mutex_unlock(&pf->mu);
}

static void pf_drop_all(napi_env env, sampler_t *pf) {
  for (int i = 0; i < PF_SLOTS; i++) pf_drop(env, pf, &pf->slot[i]);
}

/* The slot drawing into buf, or NULL. */
static pf_slot_t *pf_find(sampler_t *pf, const float *buf) {
  for (int i = 0; i < PF_SLOTS; i++)
    if (pf->slot[i].state != SLOT_FREE && pf->slot[i].buf == buf) return &pf->slot[i];
  return NULL;
}

/* The environment goes away (its worker thread ends, or the process exits): stop and join the thread.
 * The buffer references belong to the environment being torn down and go with it. */
static void sampler_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sampler_t *pf = data;
  if (pf->started) {
    pthread_mutex_lock(&pf->mu);
    for (int i = 0; i < PF_SLOTS; i++) __atomic_store_n(&pf->slot[i].cancel, 1, __ATOMIC_SEQ_CST);
    pf->quit = 1;
    pthread_cond_signal(&pf->wake);
    pthread_mutex_unlock(&pf->mu);
    parallel_wake();
    pthread_join(pf->worker, NULL);
  }
  pthread_mutex_destroy(&pf->mu);
  pthread_cond_destroy(&pf->wake);
  pthread_cond_destroy(&pf->idle);
  free(pf);
}

/* This environment's sampler (created with the module, see init). */
static sampler_t *sampler_of(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "fwdgrad native: the normal sampler of this thread is missing");
    return NULL;
  }
  return data;
}

static sampler_t *sampler_new(void) {
  sampler_t *pf = calloc(1, sizeof(sampler_t));
  if (pf == NULL) return NULL;
  pf->enabled = 1;
  pthread_mutex_init(&pf->mu, NULL);
  pthread_cond_init(&pf->wake, NULL);
  pthread_cond_init(&pf->idle, NULL);
  return pf;
}

/* Requests below this many draws are not drawn ahead (drawing them takes less than handing a buffer
 * over). With one persistent worker, 64K-draw requests gain: the second noise request of an M/1/16
 * step went from 0.11 to 0.02 ms; with a thread started per request it had been a loss. */
#define PF_MIN (1 << 16)

static napi_value js_fill_normal(napi_env env, napi_callback_info info) {
  ARGS(6);
  sampler_t *pf = sampler_of(env);
  if (pf == NULL) return NULL;
  float *out;
  size_t n;
  int32_t *kn;
  size_t nk;
  if (!get_f32(env, argv[0], &out, &n) || !get_i32_array(env, argv[2], &kn, &nk)) return NULL;
  size_t nw, nf;
  void *pw, *pf_;
  if (!get_typed(env, argv[3], napi_float64_array, "Float64Array", &pw, &nw) ||
      !get_typed(env, argv[4], napi_float64_array, "Float64Array", &pf_, &nf))
    return NULL;
  if (nk != 128 || nw != 128 || nf != 128) {
    napi_throw_type_error(env, NULL, "fwdgrad native fillNormal: expected 128-entry kn (Int32Array), wn, fn (Float64Array)");
    return NULL;
  }
  uint32_t state = (uint32_t)get_int(env, argv[1]);
  double r = get_double(env, argv[5]);
  size_t blocks = zig_count(n), from = 0;
  /* the slot drawing into this very buffer, if any: stopped either way (the buffer is written now) */
  pf_slot_t *mine = pf_find(pf, out);
  size_t done = mine != NULL ? pf_stop(pf, mine) : 0;
  /* (re)install the tables when they differ from the installed ones: in practice once, jvp-core's constants */
  pthread_mutex_lock(&ztables_mu);
  int same_tables = ztables && zr == r && memcmp(zkn, kn, sizeof(zkn)) == 0 && memcmp(zwn, pw, sizeof(zwn)) == 0 &&
                    memcmp(zfn, pf_, sizeof(zfn)) == 0;
  pthread_mutex_unlock(&ztables_mu);
  if (!same_tables) {
    /* every slot drew with the old tables (and the thread reads them): stop them all first */
    pf_drop_all(env, pf);
    mine = NULL;
    pthread_mutex_lock(&ztables_mu);
    memcpy(zkn, kn, sizeof(zkn));
    memcpy(zwn, pw, sizeof(zwn));
    memcpy(zfn, pf_, sizeof(zfn));
    zr = r;
    __atomic_store_n(&ztables, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ztables_mu);
  }
  /* the blocks already drawn into this buffer, for this counter and size */
  if (mine != NULL && mine->start == state && mine->n == n) from = done < blocks ? done : blocks;
  if (mine != NULL) pf_drop(env, pf, mine);
  /* the rest (a step's first request), block-parallel from 128K draws: waking the OpenMP workers cost
   * more than it saved on the 65K-draw requests of an M/1/16 step (0.40 vs 0.25 ms per step) */
  int threads = n - from * NORMAL_BLOCK >= (size_t)(PAR_MIN / 16) ? n_threads : 1;
  zig_blocks(state, out, n, from, blocks, threads);
  state += (uint32_t)(blocks * NORMAL_STRIDE) * GOLDEN;
  napi_value result;
  CHECK(napi_create_uint32(env, state, &result));
  return result;
}

/* prefetchInto(buf, state) -> boolean: queues drawing buf.length normals from counter `state` into buf
 * on the background thread (for a later fillNormal with buf and state). False when drawing ahead is
 * off, the request is small or every slot is taken; then buf is untouched. */
static napi_value js_prefetch_into(napi_env env, napi_callback_info info) {
  ARGS(2);
  sampler_t *pf = sampler_of(env);
  if (pf == NULL) return NULL;
  float *buf;
  size_t n;
  if (!get_f32(env, argv[0], &buf, &n)) return NULL;
  uint32_t state = (uint32_t)get_int(env, argv[1]);
  pf_slot_t *old = pf_find(pf, buf);
  if (old != NULL) pf_drop(env, pf, old);
  pf_slot_t *s = NULL;
  for (int i = 0; i < PF_SLOTS && s == NULL; i++)
    if (pf->slot[i].state == SLOT_FREE) s = &pf->slot[i];
  int ok = s != NULL && pf->enabled && n >= PF_MIN && __atomic_load_n(&ztables, __ATOMIC_ACQUIRE);
  if (ok && !pf->started) {
    if (pthread_create(&pf->worker, NULL, pf_main, pf) != 0) ok = 0;
    else pf->started = 1;
  }
  if (ok) {
    CHECK(napi_create_reference(env, argv[0], 1, &s->ref));
    pthread_mutex_lock(&pf->mu);
    s->buf = buf;
    s->n = n;
    s->blocks = zig_count(n);
    s->start = state;
    s->done = 0;
    __atomic_store_n(&s->cancel, 0, __ATOMIC_RELEASE);
    s->seq = ++pf->seq;
    s->state = SLOT_QUEUED;
    pthread_cond_signal(&pf->wake);
    pthread_mutex_unlock(&pf->mu);
  }
  napi_value result;
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

/* prefetchCancel(buf): stops drawing ahead into buf (if it was) and forgets it; buf may then be reused. */
static napi_value js_prefetch_cancel(napi_env env, napi_callback_info info) {
  ARGS(1);
  sampler_t *pf = sampler_of(env);
  if (pf == NULL) return NULL;
  float *buf;
  if (!get_f32(env, argv[0], &buf, NULL)) return NULL;
  pf_slot_t *s = pf_find(pf, buf);
  if (s != NULL) pf_drop(env, pf, s);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */

/* setPrefetch(enabled): the background normal draws on or off (FWDGRAD_NATIVE_PREFETCH=0 turns them off). */
static napi_value js_set_prefetch(napi_env env, napi_callback_info info) {
  ARGS(1);
  sampler_t *pf = sampler_of(env);
  if (pf == NULL) return NULL;
  bool on = true;
  napi_get_value_bool(env, argv[0], &on);
  pf_drop_all(env, pf);
  pf->enabled = on;
  return NULL;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  ARGS(2);
  int t = (int)get_int(env, argv[0]);
  if (t < 1) t = 1;
  n_threads = t;
  blas_current_threads = -1;
  if (blas_set_threads != NULL) {
    blas_set_threads(t);
    blas_current_threads = t;
  }
  if (argc >= 2) {
    napi_valuetype vt;
    napi_typeof(env, argv[1], &vt);
    if (vt == napi_number) PAR_MIN = get_int(env, argv[1]);
  }
  return NULL;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  if (blas_sgemm != NULL) {
    CHECK(napi_create_string_utf8(env, blas_name, NAPI_AUTO_LENGTH, &v));
  } else {
    CHECK(napi_get_null(env, &v));
  }
  CHECK(napi_set_named_property(env, obj, "blas", v));
  CHECK(napi_create_int32(env, n_threads, &v));
  CHECK(napi_set_named_property(env, obj, "threads", v));
  CHECK(napi_create_int64(env, PAR_MIN, &v));
  CHECK(napi_set_named_property(env, obj, "parallelMin", v));
  CHECK(napi_create_int32(env, blas_get_threads != NULL ? blas_get_threads() : -1, &v));
  CHECK(napi_set_named_property(env, obj, "blasThreads", v));
#ifdef _OPENMP
  CHECK(napi_get_boolean(env, true, &v));
#else
  CHECK(napi_get_boolean(env, false, &v));
#endif
  CHECK(napi_set_named_property(env, obj, "openmp", v));
  return obj;
}

static napi_value js_load_blas(napi_env env, napi_callback_info info) {
  ARGS(1);
  char name[1024] = "";
  size_t len = 0;
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (argc >= 1 && t == napi_string) napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len);
  blas_sgemm = NULL;
  blas_set_threads = NULL;
  blas_get_threads = NULL;
  blas_name[0] = '\0';
  if (strcmp(name, "none") != 0) load_blas(name);
  blas_current_threads = -1;
  return js_info(env, info);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"gemm", NULL, js_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"binary", NULL, js_binary, NULL, NULL, NULL, napi_default, NULL},
      {"unary", NULL, js_unary, NULL, NULL, NULL, napi_default, NULL},
      {"reduce", NULL, js_reduce, NULL, NULL, NULL, napi_default, NULL},
      {"transpose", NULL, js_transpose, NULL, NULL, NULL, napi_default, NULL},
      {"softmax", NULL, js_softmax, NULL, NULL, NULL, napi_default, NULL},
      {"addN", NULL, js_addn, NULL, NULL, NULL, napi_default, NULL},
      {"fillNormal", NULL, js_fill_normal, NULL, NULL, NULL, napi_default, NULL},
      {"prefetchInto", NULL, js_prefetch_into, NULL, NULL, NULL, napi_default, NULL},
      {"prefetchCancel", NULL, js_prefetch_cancel, NULL, NULL, NULL, napi_default, NULL},
      {"setPrefetch", NULL, js_set_prefetch, NULL, NULL, NULL, napi_default, NULL},
      {"layerNorm", NULL, js_layer_norm, NULL, NULL, NULL, napi_default, NULL},
      {"layerNormJvp", NULL, js_layer_norm_jvp, NULL, NULL, NULL, napi_default, NULL},
      {"groupedGemm", NULL, js_grouped_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
      {"loadBlas", NULL, js_load_blas, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  /* one normal sampler (drawing-ahead thread and buffer) per JavaScript environment: worker threads
   * each load the addon into their own environment */
  sampler_t *pf = sampler_new();
  if (pf == NULL || napi_set_instance_data(env, pf, sampler_finalize, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "fwdgrad native: could not create the normal sampler's state");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/*
 * Fused CPU kernels for banks of linear splines (lipspline.splines).
 *
 * Why native code: composing the evaluation from PyTorch ops makes ~10 passes
 * over the activations (position, floor, clamp, index, two gathers, ...) and
 * the coefficient gradient needs a scatter; that costs several times a ReLU.
 * Here each element is read once, its cell found, two coefficients read, and
 * the output written: the cost per element does not depend on the number of
 * knots.
 *
 * Layout: x is contiguous (outer, channels, inner); spline c acts on channel c.
 * Dense layers have inner = 1, conv layers inner = H*W.
 *
 * Determinism: the coefficient gradient is accumulated in a fixed number of
 * row chunks (independent of the thread count), each into its own buffer, and
 * the buffers are summed in chunk order, so a CPU run is bit-for-bit
 * repeatable whatever OpenMP does.
 *
 * Pointers arrive as integers from tensor.data_ptr(); the Python side checks
 * dtype, device and contiguity before calling.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRAD_CHUNKS 16

/* One build runs everywhere; the loader picks the AVX2 clone (vector gathers)
 * on CPUs that have it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define TARGETS
#endif

/* Locate x in the grid: left-knot index k (clamped to the first/last cell, so
 * the edge cells continue linearly outside [-R, R]) and the position p - k in
 * the cell. NaN lands in cell 0 and propagates through the arithmetic. */
#define LOCATE(T, xv)                                                                    \
    T p = ((xv) - grid_min) * inv_delta;                                                 \
    T clamped = !(p >= 0) ? 0 : (p > last_cell ? last_cell : p);                         \
    int32_t k = (int32_t)clamped; /* truncation is floor here: clamped >= 0 */           \
    T frac = p - (T)k;

#define DEFINE_KERNELS(T, SUFFIX)                                                        \
TARGETS static void forward_##SUFFIX(const T *restrict x, const T *restrict coeffs,       \
                                     T *restrict out, int64_t outer, int64_t channels,   \
                                     int64_t inner, int64_t knots, T grid_min,           \
                                     T inv_delta) {                                      \
    const T last_cell = (T)(knots - 2);                                                   \
    _Pragma("omp parallel for schedule(static) if (outer * channels * inner >= 32768)")  \
    for (int64_t b = 0; b < outer; ++b) {                                                \
        if (inner == 1) {                                                                \
            const T *xr = x + b * channels;                                              \
            T *o = out + b * channels;                                                   \
            for (int64_t ch = 0; ch < channels; ++ch) {                                  \
                LOCATE(T, xr[ch])                                                        \
                const T *c = coeffs + ch * knots + k;                                    \
                o[ch] = c[0] + (c[1] - c[0]) * frac;                                     \
            }                                                                            \
        } else {                                                                         \
            for (int64_t ch = 0; ch < channels; ++ch) {                                  \
                const T *xr = x + (b * channels + ch) * inner;                           \
                T *o = out + (b * channels + ch) * inner;                                \
                const T *c = coeffs + ch * knots;                                        \
                for (int64_t i = 0; i < inner; ++i) {                                    \
                    LOCATE(T, xr[i])                                                     \
                    o[i] = c[k] + (c[k + 1] - c[k]) * frac;                              \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
TARGETS static void backward_##SUFFIX(const T *restrict x, const T *restrict coeffs,      \
                                      const T *restrict grad_out, T *restrict grad_x,    \
                                      T *restrict grad_coeffs, T *restrict scratch,      \
                                      int64_t outer, int64_t channels, int64_t inner,    \
                                      int64_t knots, T grid_min, T inv_delta) {          \
    const T last_cell = (T)(knots - 2);                                                   \
    int64_t table = channels * knots;                                                    \
    int64_t chunks = outer < GRAD_CHUNKS ? outer : GRAD_CHUNKS;                          \
    if (grad_coeffs) memset(scratch, 0, sizeof(T) * (size_t)(chunks * table));           \
    _Pragma("omp parallel for schedule(static) if (outer * channels * inner >= 32768)")  \
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {                                   \
        int64_t begin = outer * chunk / chunks, end = outer * (chunk + 1) / chunks;      \
        T *acc = grad_coeffs ? scratch + chunk * table : NULL;                           \
        if (inner == 1 && grad_x && acc) {                                               \
            /* dense layers: the channel loop is the inner loop (no trip-1 loop) */      \
            for (int64_t b = begin; b < end; ++b) {                                      \
                const T *xr = x + b * channels;                                          \
                const T *gr = grad_out + b * channels;                                   \
                T *gx = grad_x + b * channels;                                           \
                for (int64_t ch = 0; ch < channels; ++ch) {                              \
                    LOCATE(T, xr[ch])                                                    \
                    const T *c = coeffs + ch * knots + k;                                \
                    T *a = acc + ch * knots + k;                                         \
                    T g = gr[ch];                                                        \
                    gx[ch] = g * (c[1] - c[0]) * inv_delta;                              \
                    T right = g * frac;                                                  \
                    a[0] += g - right;                                                   \
                    a[1] += right;                                                       \
                }                                                                        \
            }                                                                            \
            continue;                                                                    \
        }                                                                                \
        for (int64_t b = begin; b < end; ++b) {                                          \
            for (int64_t ch = 0; ch < channels; ++ch) {                                  \
                int64_t base = (b * channels + ch) * inner;                              \
                const T *c = coeffs + ch * knots;                                        \
                T *a = acc ? acc + ch * knots : NULL;                                    \
                for (int64_t i = 0; i < inner; ++i) {                                    \
                    LOCATE(T, x[base + i])                                               \
                    T g = grad_out[base + i];                                            \
                    if (grad_x) grad_x[base + i] = g * (c[k + 1] - c[k]) * inv_delta;    \
                    if (a) {                                                             \
                        T right = g * frac;                                              \
                        a[k] += g - right;                                               \
                        a[k + 1] += right;                                               \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    if (grad_coeffs) {                                                                   \
        memset(grad_coeffs, 0, sizeof(T) * (size_t)table);                               \
        for (int64_t chunk = 0; chunk < chunks; ++chunk) {                               \
            const T *acc = scratch + chunk * table;                                      \
            for (int64_t j = 0; j < table; ++j) grad_coeffs[j] += acc[j];                \
        }                                                                                \
    }                                                                                    \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

static PyObject *py_forward(PyObject *self, PyObject *args) {
    unsigned long long x, coeffs, out;
    long long outer, channels, inner, knots;
    double grid_min, inv_delta;
    int is_double;
    if (!PyArg_ParseTuple(args, "KKKLLLLddp", &x, &coeffs, &out, &outer, &channels, &inner,
                          &knots, &grid_min, &inv_delta, &is_double))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (is_double)
        forward_f64((const double *)x, (const double *)coeffs, (double *)out, outer, channels,
                    inner, knots, grid_min, inv_delta);
    else
        forward_f32((const float *)x, (const float *)coeffs, (float *)out, outer, channels,
                    inner, knots, (float)grid_min, (float)inv_delta);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_backward(PyObject *self, PyObject *args) {
    unsigned long long x, coeffs, grad_out, grad_x, grad_coeffs, scratch;
    long long outer, channels, inner, knots;
    double grid_min, inv_delta;
    int is_double;
    if (!PyArg_ParseTuple(args, "KKKKKKLLLLddp", &x, &coeffs, &grad_out, &grad_x, &grad_coeffs,
                          &scratch, &outer, &channels, &inner, &knots, &grid_min, &inv_delta,
                          &is_double))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (is_double)
        backward_f64((const double *)x, (const double *)coeffs, (const double *)grad_out,
                     (double *)grad_x, (double *)grad_coeffs, (double *)scratch, outer, channels,
                     inner, knots, grid_min, inv_delta);
    else
        backward_f32((const float *)x, (const float *)coeffs, (const float *)grad_out,
                     (float *)grad_x, (float *)grad_coeffs, (float *)scratch, outer, channels,
                     inner, knots, (float)grid_min, (float)inv_delta);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", py_forward, METH_VARARGS, "Evaluate a bank of linear splines."},
    {"backward", py_backward, METH_VARARGS, "Gradients of a bank of linear splines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spline_kernels",
                                    "Fused CPU kernels for linear-spline activations.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__spline_kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m) PyModule_AddIntConstant(m, "GRAD_CHUNKS", GRAD_CHUNKS);
    return m;
}

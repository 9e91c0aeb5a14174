/*
 * The table of training kernels that lipspline/_spline_kernels.c exports as the capsule
 * `lipspline._spline_kernels._C_API`, and that the C++ autograd nodes (spline_autograd.cpp) call.
 * One definition for both sides: the C module fills it, the C++ module reads it.
 *
 * Append-only: `version` comes first, new entries go at the end with a new version, and a reader
 * refuses a table whose version is not the one it was built for. Each kernel returns 0, or -1
 * when out of memory; norm_terms returns the penalty's value. Version 3 added the saved-rises pair
 * (float32 dense layers): saves_rises(is_double, knots, inner) says whether a training forward should
 * store each element's cell rise, forward_rises stores it, backward_rises reads it instead of the knots.
 */
#ifndef LIPSPLINE_KERNEL_API_H
#define LIPSPLINE_KERNEL_API_H

#include <stdint.h>

#define LIPSPLINE_KERNEL_API_VERSION 3

typedef struct {
    int version;
    int (*forward_f32)(const float *, const float *, float *, int64_t, int64_t, int64_t, int32_t, float, float, int);
    int (*forward_f64)(const double *, const double *, double *, int64_t, int64_t, int64_t, int32_t, double, double,
                       int);
    int (*backward_f32)(const float *, const float *, const float *, float *, float *, int64_t, int64_t, int64_t,
                        int32_t, float, float, int);
    int (*backward_f64)(const double *, const double *, const double *, double *, double *, int64_t, int64_t,
                        int64_t, int32_t, double, double, int);
    double (*norm_terms)(const void *, void *, int64_t, int32_t, int32_t, int32_t, const int32_t *, const double *,
                         int, double);
    int (*saves_rises)(int, int32_t, int64_t);
    int (*forward_rises_f32)(const float *, const float *, float *, float *, int64_t, int64_t, int32_t, float, float,
                             int);
    int (*backward_rises_f32)(const float *, const float *, const float *, float *, float *, int64_t, int64_t, int32_t,
                              float, float, int);
} lipspline_kernel_api;

#endif

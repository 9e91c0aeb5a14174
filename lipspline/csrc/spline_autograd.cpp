// The spline activation's autograd node in C++ (optional; lipspline/nn/native_autograd.py builds it).
//
// Why: the Python node (splines._SplineEval) runs a few dozen interpreter lines per layer per
// training step, forward and backward. Inside a step the interpreter runs cold (the matmuls and the
// autograd engine have evicted it from the caches), and those lines cost about as much as the kernel:
// replacing the C++ ReLU of a 784-256-256-10 net by the same ReLU inside a Python autograd node made
// its training step about 5 % slower. This node does the same work as _SplineEval with no Python
// on the way: it calls the very kernels of lipspline._spline_kernels (through the function table
// that module exports as the capsule `_C_API`), so both paths give bit-identical results.

#include <torch/extension.h>

#include <cstdint>
#include <stdexcept>

namespace {

// Mirror of lipspline_kernel_api in _spline_kernels.c (append-only; `version` first).
struct KernelApi {
    int version;
    int (*forward_f32)(const float *, const float *, float *, int64_t, int64_t, int64_t, int32_t, float, float, int);
    int (*forward_f64)(const double *, const double *, double *, int64_t, int64_t, int64_t, int32_t, double, double,
                       int);
    int (*backward_f32)(const float *, const float *, const float *, float *, float *, int64_t, int64_t, int64_t,
                        int32_t, float, float, int);
    int (*backward_f64)(const double *, const double *, const double *, double *, double *, int64_t, int64_t,
                        int64_t, int32_t, double, double, int);
};

constexpr int kApiVersion = 1;
const KernelApi *api = nullptr;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// (outer, channels, inner) of a tensor whose axis 1 holds the channels, as splines._layout.
void layout(const at::Tensor &x, int64_t &outer, int64_t &channels, int64_t &inner) {
    outer = x.size(0);
    channels = x.size(1);
    inner = 1;
    for (int64_t d = 2; d < x.dim(); ++d) inner *= x.size(d);
}

void check_status(int rc) {
    if (rc != 0) throw std::bad_alloc();
}

struct SplineEval : public torch::autograd::Function<SplineEval> {
    static at::Tensor forward(AutogradContext *ctx, at::Tensor x, at::Tensor coeffs, double grid_min,
                              double inv_delta) {
        x = x.contiguous();
        coeffs = coeffs.contiguous();
        ctx->save_for_backward({x, coeffs});
        ctx->saved_data["grid_min"] = grid_min;
        ctx->saved_data["inv_delta"] = inv_delta;
        int64_t outer, channels, inner;
        layout(x, outer, channels, inner);
        const auto knots = static_cast<int32_t>(coeffs.size(1));
        at::Tensor out = at::empty_like(x);
        const int threads = at::get_num_threads();
        if (x.scalar_type() == at::kDouble)
            check_status(api->forward_f64(x.data_ptr<double>(), coeffs.data_ptr<double>(), out.data_ptr<double>(),
                                          outer, channels, inner, knots, grid_min, inv_delta, threads));
        else
            check_status(api->forward_f32(x.data_ptr<float>(), coeffs.data_ptr<float>(), out.data_ptr<float>(),
                                          outer, channels, inner, knots, static_cast<float>(grid_min),
                                          static_cast<float>(inv_delta), threads));
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &x = saved[0], &coeffs = saved[1];
        const double grid_min = ctx->saved_data["grid_min"].toDouble();
        const double inv_delta = ctx->saved_data["inv_delta"].toDouble();
        const bool want_x = ctx->needs_input_grad(0), want_c = ctx->needs_input_grad(1);
        at::Tensor grad_x, grad_c;
        if (!want_x && !want_c) return {grad_x, grad_c, at::Tensor(), at::Tensor()};
        const at::Tensor grad_out = grads[0].contiguous();
        int64_t outer, channels, inner;
        layout(x, outer, channels, inner);
        const auto knots = static_cast<int32_t>(coeffs.size(1));
        if (want_x) grad_x = at::empty_like(x);
        if (want_c) grad_c = at::empty_like(coeffs);
        const int threads = at::get_num_threads();
        if (x.scalar_type() == at::kDouble)
            check_status(api->backward_f64(x.data_ptr<double>(), coeffs.data_ptr<double>(),
                                           grad_out.data_ptr<double>(), want_x ? grad_x.data_ptr<double>() : nullptr,
                                           want_c ? grad_c.data_ptr<double>() : nullptr, outer, channels, inner,
                                           knots, grid_min, inv_delta, threads));
        else
            check_status(api->backward_f32(x.data_ptr<float>(), coeffs.data_ptr<float>(), grad_out.data_ptr<float>(),
                                           want_x ? grad_x.data_ptr<float>() : nullptr,
                                           want_c ? grad_c.data_ptr<float>() : nullptr, outer, channels, inner,
                                           knots, static_cast<float>(grid_min), static_cast<float>(inv_delta),
                                           threads));
        return {grad_x, grad_c, at::Tensor(), at::Tensor()};
    }
};

// The caller (splines.evaluate_splines) has checked what _use_native checks: CPU tensors of one
// dtype, float32 or float64, at least two dimensions. Sizes are checked here, as the C module does.
at::Tensor spline_eval(const at::Tensor &x, const at::Tensor &coeffs, double grid_min, double inv_delta) {
    TORCH_CHECK(api != nullptr, "spline_autograd: bind() was not called");
    TORCH_CHECK(x.dim() >= 2 && coeffs.dim() == 2 && coeffs.size(0) == x.size(1),
                "spline_autograd: x (outer, channels, ...) and coeffs (channels, knots) do not match");
    TORCH_CHECK(coeffs.size(1) >= 2 && coeffs.size(0) * coeffs.size(1) < INT32_MAX,
                "spline kernel: channels * knots must fit in int32 and knots >= 2");
    return SplineEval::apply(x, coeffs, grid_min, inv_delta);
}

// Take the kernel table from lipspline._spline_kernels._C_API; false when its version is not ours.
bool bind(pybind11::capsule capsule) {
    auto table = static_cast<const KernelApi *>(capsule.get_pointer());
    if (table == nullptr || table->version != kApiVersion) return false;
    api = table;
    return true;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "C++ autograd nodes over lipspline's spline kernels";
    m.attr("API_VERSION") = kApiVersion;
    m.def("bind", &bind, "Bind the kernel table of lipspline._spline_kernels (its _C_API capsule).");
    m.def("spline_eval", &spline_eval, "Evaluate a bank of linear splines (differentiable).");
}

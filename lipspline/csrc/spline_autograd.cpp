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

#include "kernel_api.h"

namespace {

using KernelApi = lipspline_kernel_api;
constexpr int kApiVersion = LIPSPLINE_KERNEL_API_VERSION;
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

// One kernel call for either dtype: T is the element type; the grid's numbers are passed in T too.
template <typename T, typename Forward>
void run_forward(Forward kernel, const at::Tensor &x, const at::Tensor &coeffs, at::Tensor &out, double grid_min,
                 double inv_delta) {
    int64_t outer, channels, inner;
    layout(x, outer, channels, inner);
    check_status(kernel(x.data_ptr<T>(), coeffs.data_ptr<T>(), out.data_ptr<T>(), outer, channels, inner,
                        static_cast<int32_t>(coeffs.size(1)), static_cast<T>(grid_min), static_cast<T>(inv_delta),
                        at::get_num_threads()));
}

template <typename T, typename Backward>
void run_backward(Backward kernel, const at::Tensor &x, const at::Tensor &coeffs, const at::Tensor &grad_out,
                  at::Tensor &grad_x, at::Tensor &grad_c, double grid_min, double inv_delta) {
    int64_t outer, channels, inner;
    layout(x, outer, channels, inner);
    check_status(kernel(x.data_ptr<T>(), coeffs.data_ptr<T>(), grad_out.data_ptr<T>(),
                        grad_x.defined() ? grad_x.data_ptr<T>() : nullptr,
                        grad_c.defined() ? grad_c.data_ptr<T>() : nullptr, outer, channels, inner,
                        static_cast<int32_t>(coeffs.size(1)), static_cast<T>(grid_min), static_cast<T>(inv_delta),
                        at::get_num_threads()));
}

// Where the kernel says so (float32 dense layers on its 8-wide tiles), a forward whose input wants a
// gradient also stores each element's cell rise, and the backward reads it instead of the knots: the
// "saved rises" of _spline_kernels.c, decided exactly as splines._SplineEval decides it.
struct SplineEval : public torch::autograd::Function<SplineEval> {
    static at::Tensor forward(AutogradContext *ctx, at::Tensor x, at::Tensor coeffs, double grid_min,
                              double inv_delta) {
        const bool wants_x = x.requires_grad();  // before contiguous(): a copy made here has no grad
        x = x.contiguous();
        coeffs = coeffs.contiguous();
        ctx->saved_data["grid_min"] = grid_min;
        ctx->saved_data["inv_delta"] = inv_delta;
        at::Tensor out = at::empty_like(x);
        int64_t outer, channels, inner;
        layout(x, outer, channels, inner);
        const int32_t knots = static_cast<int32_t>(coeffs.size(1));
        if (wants_x && api->saves_rises(x.scalar_type() == at::kDouble, knots, inner)) {
            at::Tensor rises = at::empty_like(x);
            check_status(api->forward_rises_f32(x.data_ptr<float>(), coeffs.data_ptr<float>(), out.data_ptr<float>(),
                                                rises.data_ptr<float>(), outer, channels, knots,
                                                static_cast<float>(grid_min), static_cast<float>(inv_delta),
                                                at::get_num_threads()));
            ctx->save_for_backward({x, coeffs, rises});
            return out;
        }
        ctx->save_for_backward({x, coeffs});
        if (x.scalar_type() == at::kDouble)
            run_forward<double>(api->forward_f64, x, coeffs, out, grid_min, inv_delta);
        else
            run_forward<float>(api->forward_f32, x, coeffs, out, grid_min, inv_delta);
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &x = saved[0], &coeffs = saved[1];
        const double grid_min = ctx->saved_data["grid_min"].toDouble();
        const double inv_delta = ctx->saved_data["inv_delta"].toDouble();
        at::Tensor grad_x, grad_c;
        if (ctx->needs_input_grad(0)) grad_x = at::empty_like(x);
        if (ctx->needs_input_grad(1)) grad_c = at::empty_like(coeffs);
        if (grad_x.defined() || grad_c.defined()) {
            const at::Tensor grad_out = grads[0].contiguous();
            if (saved.size() == 3) {  // the forward stored the rises (float32, dense)
                check_status(api->backward_rises_f32(
                    x.data_ptr<float>(), saved[2].data_ptr<float>(), grad_out.data_ptr<float>(),
                    grad_x.defined() ? grad_x.data_ptr<float>() : nullptr,
                    grad_c.defined() ? grad_c.data_ptr<float>() : nullptr, x.size(0), x.size(1),
                    static_cast<int32_t>(coeffs.size(1)), static_cast<float>(grid_min), static_cast<float>(inv_delta),
                    at::get_num_threads()));
            } else if (x.scalar_type() == at::kDouble)
                run_backward<double>(api->backward_f64, x, coeffs, grad_out, grad_x, grad_c, grid_min, inv_delta);
            else
                run_backward<float>(api->backward_f32, x, coeffs, grad_out, grad_x, grad_c, grid_min, inv_delta);
        }
        return {grad_x, grad_c, at::Tensor(), at::Tensor()};
    }
};

// sum_l w_l sum_n sum_j |(c_l M_l)_{n,j}|: the spline-norm penalty of a network as one node, the C++
// twin of splines._WeightedNormSum's native path (the same kernel calls in the same order, so the same
// bits). M_l arrives as its stencil: rows (J, taps) int32 and values (J, taps) float64, contiguous.
struct WeightedNormSum : public torch::autograd::Function<WeightedNormSum> {
    static double terms(const at::Tensor &c, const at::Tensor &rows, const at::Tensor &values, at::Tensor *grad,
                        double scale) {
        return api->norm_terms(c.data_ptr(), grad ? grad->data_ptr() : nullptr, c.size(0),
                               static_cast<int32_t>(c.size(1)), static_cast<int32_t>(rows.size(0)),
                               static_cast<int32_t>(rows.size(1)), rows.data_ptr<int32_t>(),
                               values.data_ptr<double>(), c.scalar_type() == at::kDouble, scale);
    }

    static at::Tensor forward(AutogradContext *ctx, at::TensorList coeffs, std::vector<double> weights,
                              std::vector<at::Tensor> rows, std::vector<at::Tensor> values) {
        std::vector<at::Tensor> saved;
        double total = 0.0;
        for (size_t l = 0; l < coeffs.size(); ++l) {
            saved.push_back(coeffs[l].contiguous());
            total += weights[l] * terms(saved.back(), rows[l], values[l], nullptr, 0.0);
        }
        ctx->save_for_backward(saved);  // a backward after the knots changed in place is then refused
        ctx->saved_data["weights"] = weights;
        ctx->saved_data["rows"] = rows;
        ctx->saved_data["values"] = values;
        return at::scalar_tensor(total, coeffs[0].options());
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto weights = ctx->saved_data["weights"].toDoubleVector();
        const auto rows = ctx->saved_data["rows"].toTensorVector();
        const auto values = ctx->saved_data["values"].toTensorVector();
        const double g = grads[0].item<double>();
        variable_list out;
        for (size_t l = 0; l < saved.size(); ++l) {
            at::Tensor grad;
            if (ctx->needs_input_grad(l)) {
                grad = at::empty_like(saved[l]);
                terms(saved[l], rows[l], values[l], &grad, g * weights[l]);
            }
            out.push_back(grad);
        }
        out.resize(saved.size() + 3);  // weights, rows and values get none
        return out;
    }
};

at::Tensor weighted_norm_sum(const std::vector<at::Tensor> &coeffs, const std::vector<double> &weights,
                             const std::vector<at::Tensor> &rows, const std::vector<at::Tensor> &values) {
    TORCH_CHECK(api != nullptr, "spline_autograd: bind() was not called");
    const size_t n = coeffs.size();
    TORCH_CHECK(n > 0 && weights.size() == n && rows.size() == n && values.size() == n,
                "weighted_norm_sum: one weight and one stencil per coefficient table");
    for (size_t l = 0; l < n; ++l) {
        const auto &c = coeffs[l], &r = rows[l], &v = values[l];
        TORCH_CHECK(c.dim() == 2 && c.size(1) >= 2 && c.size(0) * c.size(1) < INT32_MAX,
                    "spline kernel: channels * knots must fit in int32 and knots >= 2");
        TORCH_CHECK(c.scalar_type() == coeffs[0].scalar_type() &&
                        (c.scalar_type() == at::kFloat || c.scalar_type() == at::kDouble),
                    "weighted_norm_sum: float32 or float64 tables of one dtype");
        TORCH_CHECK(r.dim() == 2 && r.scalar_type() == at::kInt && r.is_contiguous() && v.sizes() == r.sizes() &&
                        v.scalar_type() == at::kDouble && v.is_contiguous(),
                    "weighted_norm_sum: a stencil is (columns, taps) int32 rows and float64 values");
        TORCH_CHECK(r.size(0) <= c.size(1) && r.size(1) >= 1 && r.size(1) <= c.size(1),
                    "norm_terms: need 0 <= columns <= knots and 1 <= taps <= knots");
    }
    return WeightedNormSum::apply(at::TensorList(coeffs), weights, rows, values);
}

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
    m.def("weighted_norm_sum", &weighted_norm_sum, "The spline-norm penalty of several layers (differentiable).");
}

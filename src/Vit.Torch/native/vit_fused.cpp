// Fused operations (see vit_fused.h). Why they exist, measured on this project's machines (ViT-Ti/16, bfloat16):
//  - attention as a chain of ATen ops copies q, k and v out of the projection, scales q in a separate pass, and in
//    backward rebuilds the projection's gradient from three full-size zero tensors (select) or a stack; here one
//    reorder makes q, k, v contiguous, the scale is applied in that buffer, and backward writes dq, dk, dv straight
//    into one buffer;
//  - scoring in bfloat16: ATen's addmm copies the bias into the output before the product and GELU is a pass of its
//    own; oneDNN's matmul applies both in its epilogue (ViT-Ti/16, batch 64: ~15% less time in the linear layers,
//    and the GELU pass gone);
//  - ATen 1.13's softmax on bfloat16 runs its AVX2 kernel with a conversion per element; oneDNN's AVX-512 softmax
//    is 2x (forward) to 3x (backward) faster, so bfloat16 softmax goes to oneDNN when the CPU has AVX-512.
// Results are the same mathematics as the ATen chain; in float32 and float64 every kernel is ATen's.
#include "vit_fused.h"
#include "vit_tensor_list.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <unordered_map>

namespace vit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------------------------------------
// oneDNN softmax over the last dimension, bfloat16, contiguous
// ---------------------------------------------------------------------------------------------------------

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN's bfloat16 kernels are JIT-compiled for AVX-512 and later; below that it would fall back to reference code.
bool dnnl_has_avx512() {
  static const bool yes = [] {
    const auto isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const auto need = static_cast<unsigned>(dnnl_cpu_isa_avx512_core);
    return (isa & need) == need;
  }();
  return yes;
}

bool use_dnnl_softmax(const at::Tensor& x) {
  return x.scalar_type() == at::kBFloat16 && x.device().is_cpu() && x.is_contiguous() && dnnl_has_avx512();
}

dnnl::memory::desc rows_desc(const at::Tensor& x) {
  const int64_t cols = x.size(-1);
  return dnnl::memory::desc({x.numel() / cols, cols}, dnnl::memory::data_type::bf16, dnnl::memory::format_tag::ab);
}

dnnl::softmax_forward::primitive_desc softmax_pd(const dnnl::memory::desc& md) {
  return dnnl::softmax_forward::primitive_desc(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_training, md, 1), cpu_engine());
}

// softmax(x) along the last dimension.
at::Tensor softmax_last(const at::Tensor& x) {
  if (!use_dnnl_softmax(x)) return at::_softmax(x, -1, false);
  auto y = at::empty_like(x);
  const auto md = rows_desc(x);
  const auto pd = softmax_pd(md);
  dnnl::stream stream(cpu_engine());
  dnnl::softmax_forward(pd).execute(stream, {{DNNL_ARG_SRC, dnnl::memory(md, cpu_engine(), x.data_ptr())},
                                             {DNNL_ARG_DST, dnnl::memory(md, cpu_engine(), y.data_ptr())}});
  stream.wait();
  return y;
}

// The gradient of softmax with output y: y * (dy - sum(dy * y)) along the last dimension.
at::Tensor softmax_last_backward(const at::Tensor& dy, const at::Tensor& y) {
  if (!use_dnnl_softmax(y) || !use_dnnl_softmax(dy)) return at::_softmax_backward_data(dy, y, -1, y.scalar_type());
  auto dx = at::empty_like(y);
  const auto md = rows_desc(y);
  const auto fwd = softmax_pd(md);
  const auto pd = dnnl::softmax_backward::primitive_desc(dnnl::softmax_backward::desc(md, md, 1), cpu_engine(), fwd);
  dnnl::stream stream(cpu_engine());
  dnnl::softmax_backward(pd).execute(stream, {{DNNL_ARG_DST, dnnl::memory(md, cpu_engine(), y.data_ptr())},
                                              {DNNL_ARG_DIFF_DST, dnnl::memory(md, cpu_engine(), dy.data_ptr())},
                                              {DNNL_ARG_DIFF_SRC, dnnl::memory(md, cpu_engine(), dx.data_ptr())}});
  stream.wait();
  return dx;
}

// ---------------------------------------------------------------------------------------------------------
// Self-attention
// ---------------------------------------------------------------------------------------------------------

struct SelfAttention : public torch::autograd::Function<SelfAttention> {
  // qkv (B, N, 3D) -> {(B, N, D), probabilities (B, H, N, N), not differentiable}. Saves the reordered
  // (q * scale, k, v), the probabilities and the dropout mask.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& qkv, int64_t heads, double scale, double dropout,
                               bool train) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // dtypes are decided by the caller
    const int64_t b = qkv.size(0), n = qkv.size(1), d = qkv.size(2) / 3, dh = d / heads, bh = b * heads;
    auto x = at::empty({3, b, heads, n, dh}, qkv.options());
    x.copy_(qkv.view({b, n, 3, heads, dh}).permute({2, 0, 3, 1, 4}));   // (3, B, H, N, Dh), one pass
    auto parts = x.view({3, bh, n, dh});
    auto q = parts[0], k = parts[1], v = parts[2];                      // (BH, N, Dh), contiguous
    q.mul_(scale);                                                      // q / sqrt(Dh), as timm and torchvision
    auto p = softmax_last(at::bmm(q, k.transpose(1, 2)));               // (BH, N, N)
    at::Tensor mask;
    auto pd = p;
    if (train && dropout > 0) {
      mask = at::empty_like(p).bernoulli_(1.0 - dropout, vit::thread_generator());  // kept with probability 1 - p
      pd = p * mask * (1.0 / (1.0 - dropout));
    }
    auto o = at::bmm(pd, v);                                            // (BH, N, Dh)
    auto out = at::empty({b, n, heads, dh}, qkv.options());
    out.copy_(o.view({b, heads, n, dh}).permute({0, 2, 1, 3}));         // (B, N, H, Dh): heads concatenated
    ctx->save_for_backward({x, p, mask});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dropout"] = (train && dropout > 0) ? dropout : 0.0;
    auto probs = p.view({b, heads, n, n});
    ctx->mark_non_differentiable({probs});
    return {out.view({b, n, d}), probs};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& p = saved[1];
    const auto& mask = saved[2];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble(), dropout = ctx->saved_data["dropout"].toDouble();
    const int64_t b = x.size(1), n = x.size(3), dh = x.size(4), d = heads * dh, bh = b * heads;
    auto parts = x.view({3, bh, n, dh});
    auto q = parts[0], k = parts[1], v = parts[2];
    auto dout = grads[0].to(x.scalar_type());                           // (B, N, D)
    auto d_o = at::empty({b, heads, n, dh}, x.options());
    d_o.copy_(dout.view({b, n, heads, dh}).permute({0, 2, 1, 3}));
    auto dov = d_o.view({bh, n, dh});
    auto dx = at::empty({3, bh, n, dh}, x.options());
    auto dq = dx[0], dk = dx[1], dv = dx[2];
    auto pd = dropout > 0 ? p * mask * (1.0 / (1.0 - dropout)) : p;
    at::bmm_out(dv, pd.transpose(1, 2), dov);                          // dv = Pᵀ dO
    auto dp = at::bmm(dov, v.transpose(1, 2));                          // dP = dO vᵀ
    if (dropout > 0) dp.mul_(mask).mul_(1.0 / (1.0 - dropout));
    auto ds = softmax_last_backward(dp, p);                             // dS
    at::bmm_out(dq, ds, k);                                             // d(q * scale) = dS k
    dq.mul_(scale);                                                     // dq
    at::bmm_out(dk, ds.transpose(1, 2), q);                             // dk = dSᵀ (q * scale)
    auto dqkv = at::empty({b, n, 3, heads, dh}, x.options());
    dqkv.copy_(dx.view({3, b, heads, n, dh}).permute({1, 3, 0, 2, 4}));
    return {dqkv.view({b, n, 3 * d}), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------------------
// Linear (+ GELU) for scoring
// ---------------------------------------------------------------------------------------------------------

dnnl::memory::data_type dnnl_type(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return dnnl::memory::data_type::bf16;
    case at::kFloat: return dnnl::memory::data_type::f32;
    default: throw std::invalid_argument("no oneDNN type for this dtype");
  }
}

// x (..., I) bfloat16, w (O, I) bfloat16, b (O) float32 or bfloat16 or undefined -> (..., O) bfloat16.
at::Tensor dnnl_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool gelu) {
  using tag = dnnl::memory::format_tag;
  const auto xc = x.contiguous();
  const auto wc = w.contiguous();
  const int64_t in = wc.size(1), out_features = wc.size(0), rows = xc.numel() / in;
  auto out_sizes = xc.sizes().vec();
  out_sizes.back() = out_features;
  auto y = at::empty(out_sizes, xc.options());
  const dnnl::memory::desc src({rows, in}, dnnl::memory::data_type::bf16, tag::ab);
  const dnnl::memory::desc wei({in, out_features}, dnnl::memory::data_type::bf16, tag::ba);  // wᵀ without a copy
  const dnnl::memory::desc dst({rows, out_features}, dnnl::memory::data_type::bf16, tag::ab);
  dnnl::primitive_attr attr;
  if (gelu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  auto& engine = cpu_engine();
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(src, engine, xc.data_ptr())},
                                             {DNNL_ARG_WEIGHTS, dnnl::memory(wei, engine, wc.data_ptr())},
                                             {DNNL_ARG_DST, dnnl::memory(dst, engine, y.data_ptr())}};
  at::Tensor bc;
  dnnl::matmul::primitive_desc pd;
  if (b.defined()) {
    bc = b.contiguous();
    const dnnl::memory::desc bias({1, out_features}, dnnl_type(bc.scalar_type()), tag::ab);
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, bias, dst), attr, engine);
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias, engine, bc.data_ptr()));
  } else {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, engine);
  }
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream, args);
  stream.wait();
  return y;
}

}  // namespace

at::Tensor self_attention(const at::Tensor& qkv, int64_t heads, double scale, double dropout, bool train,
                          at::Tensor* probs) {
  if (qkv.dim() != 3) throw std::invalid_argument("self-attention expects qkv of shape (B, N, 3D), got " +
                                                  std::to_string(qkv.dim()) + " dimensions");
  if (heads < 1) throw std::invalid_argument("self-attention needs at least one head");
  if (qkv.size(2) % (3 * heads) != 0)
    throw std::invalid_argument("self-attention: the last dimension " + std::to_string(qkv.size(2)) +
                                " is not 3 x heads x head size for " + std::to_string(heads) + " heads");
  if (!(dropout >= 0 && dropout < 1)) throw std::invalid_argument("attention dropout must be in [0, 1)");
  if (!at::isFloatingType(qkv.scalar_type())) throw std::invalid_argument("self-attention needs a floating-point qkv");
  // Under autocast the product q kᵀ would run in the low-precision dtype: cast here, where autograd records it.
  at::Tensor input = qkv;
  if (qkv.device().is_cpu() && at::autocast::is_cpu_enabled() && qkv.scalar_type() == at::kFloat)
    input = qkv.to(at::autocast::get_autocast_cpu_dtype());
  else if (qkv.device().is_cuda() && at::autocast::is_enabled() && qkv.scalar_type() == at::kFloat)
    input = qkv.to(at::autocast::get_autocast_gpu_dtype());
  auto outs = SelfAttention::apply(input, heads, scale, dropout, train);
  if (probs != nullptr) *probs = outs[1].detach();
  return outs[0];
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool gelu) {
  const bool records =
      at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
  if (!records && x.device().is_cpu() && w.device().is_cpu() && w.dim() == 2 && x.dim() >= 1 &&
      x.size(-1) == w.size(1) && x.numel() > 0 && dnnl_has_avx512()) {
    at::Tensor xx = x, ww = w;
    if (at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16) {
      if (xx.scalar_type() == at::kFloat) xx = xx.to(at::kBFloat16);
      if (ww.scalar_type() == at::kFloat) ww = at::autocast::cached_cast(at::kBFloat16, ww, c10::DeviceType::CPU);
    }
    const bool bias_ok = !b.defined() || b.scalar_type() == at::kFloat || b.scalar_type() == at::kBFloat16;
    if (xx.scalar_type() == at::kBFloat16 && ww.scalar_type() == at::kBFloat16 && bias_ok) return dnnl_linear(xx, ww, b, gelu);
  }
  c10::optional<at::Tensor> bias;
  if (b.defined()) bias = b;
  auto y = at::linear(x, w, bias);
  return gelu ? at::gelu(y) : y;
}

}  // namespace vit

// Fused operations of vit_native: each is one autograd node over libtorch and oneDNN kernels, with the same
// mathematics as the chain of ATen ops it replaces and fewer passes over memory. Called by the exports in
// vit_native.cpp; no ViT knowledge here beyond the op's own definition.
#pragma once

#include <ATen/ATen.h>

namespace vit {

// Scaled dot-product self-attention of a fused projection (Vaswani et al. 2017, eq. 1, multi-head):
// qkv (B, N, 3D) holds q, k, v side by side, each split into `heads` heads of D/heads;
// returns concat_h(softmax(scale * q_h k_hᵀ) v_h) as (B, N, D). With dropout > 0 and train, the attention
// probabilities are dropped (inverted dropout) before the product with v. When probs is given it receives the
// probabilities (B, H, N, N) before dropout, detached. Differentiable in qkv.
at::Tensor self_attention(const at::Tensor& qkv, int64_t heads, double scale, double dropout, bool train,
                          at::Tensor* probs);

// y = x wᵀ + b (b may be undefined), followed by exact GELU when gelu is set: at::linear's semantics, autocast
// included. When autograd does not record (no_grad, inference mode) and the product runs in bfloat16 on a CPU with
// AVX-512, one oneDNN matmul computes it with the bias (float32, not rounded to bfloat16) and the GELU fused into the
// product's epilogue; otherwise ATen's linear (and gelu) run.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool gelu);

}  // namespace vit

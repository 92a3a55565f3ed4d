// Launch parameters of the VAE kernels (CPU and CUDA share them). Arrays are contiguous, in the
// storage dtype of the launch: (n, D) per element, (n,) per sample.
#pragma once

#include <cstdint>

#include "common/launch.h"

namespace gencore {
namespace vae {

// z = mu + exp(logvar / 2) * eps and/or kl = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar) per sample.
struct ForwardArgs : RowNoise {
  const void* mu = nullptr;
  const void* logvar = nullptr;
  const void* noise = nullptr;  // explicit eps (n, D), or null: drawn from the noise contract
  void* z = nullptr;            // out (n, D), or null: not wanted
  void* kl = nullptr;           // out (n,), or null: not wanted
};

// Gradients wrt mu and logvar; eps is recomputed from the counter when noise is null.
struct BackwardArgs : RowNoise {
  const void* mu = nullptr;
  const void* logvar = nullptr;
  const void* noise = nullptr;
  const void* grad_z = nullptr;   // (n, D), or null: zero
  const void* grad_kl = nullptr;  // (n,), or null: zero
  void* grad_mu = nullptr;        // out (n, D)
  void* grad_logvar = nullptr;    // out (n, D)
};

void run_cpu(const ForwardArgs& a, const Launch& at);
void run_cpu(const BackwardArgs& a, const Launch& at);
void run_cuda(const ForwardArgs& a, const Launch& at);
void run_cuda(const BackwardArgs& a, const Launch& at);

}  // namespace vae
}  // namespace gencore

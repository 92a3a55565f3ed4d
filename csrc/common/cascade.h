// Pairwise summation of a stream of block sums, in a tree fixed by the block index alone (so a
// per-sample sum does not depend on the thread count, the SIMD clone or the batch position).
#pragma once

#include <cstdint>

namespace gencore {

// Block k is merged like the carries of a binary counter: the tree depends only on how many
// blocks there are. total() returns the sum (smallest partial sums first) and starts a new stream.
template <typename A>
struct Cascade {
  A level[64];
  uint64_t count = 0;

  void push(A s) {
    int k = 0;
    for (uint64_t c = count; c & 1; c >>= 1, ++k) s = level[k] + s;
    level[k] = s;
    ++count;
  }

  A total() {
    A s = A(0);
    bool first = true;
    for (int k = 0; (count >> k) != 0; ++k) {
      if ((count >> k) & 1) {
        s = first ? level[k] : level[k] + s;
        first = false;
      }
    }
    count = 0;
    return s;
  }
};

}  // namespace gencore

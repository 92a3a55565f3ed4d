"""The peak-memory probe of the benchmarks measures the call, not the parent's history."""

import os

import pytest
import torch

from gencore.bench.vae import peak_extra_bytes

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/clear_refs"),
                                reason="needs fork and Linux /proc")

MiB = 2**20


def test_peak_counts_what_the_call_allocates():
    def alloc():
        t = torch.empty(48 * MiB // 4)
        t.fill_(1.0)  # touch every page
        del t

    extra = peak_extra_bytes(alloc)
    assert 46 * MiB <= extra <= 56 * MiB


def test_parent_peak_is_not_counted():
    # Free heap memory the parent still holds resident: 100 MiB in chunks below the allocator's
    # mmap threshold, then a small allocation above them so the heap top cannot be trimmed.
    chunks = [bytearray(100_000) for _ in range(1000)]
    keep = bytearray(64)
    del chunks
    extra = peak_extra_bytes(lambda: torch.zeros(16).sum())
    assert extra < 8 * MiB
    del keep

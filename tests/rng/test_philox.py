import pytest
import torch

import gencore
from gencore.rng import reference

# Random123 tests/kat_vectors: philox4x32 10 rounds: counter words, key words -> output words.
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF, 0xFFFFFFFF], [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_known_answers(ctr, key, expected):
    c = torch.tensor([ctr], dtype=torch.int64)
    k = torch.tensor(key, dtype=torch.int64)
    assert gencore.rng.philox(c, k)[0].tolist() == expected
    assert reference.philox(c, key)[0].tolist() == expected


def test_native_words_equal_reference():
    g = torch.Generator().manual_seed(1)
    c = torch.randint(0, 2**32, (4096, 4), generator=g, dtype=torch.int64)
    k = torch.randint(0, 2**32, (2,), generator=g, dtype=torch.int64)
    assert torch.equal(gencore.rng.philox(c, k), reference.philox(c, (int(k[0]), int(k[1]))))


def test_bad_counter():
    with pytest.raises(ValueError, match="counter"):
        gencore.rng.philox(torch.zeros(3, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="counter"):
        gencore.rng.philox(torch.zeros(3, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="counter"):
        gencore.rng.philox(torch.full((1, 4), 2**32, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))

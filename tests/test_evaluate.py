from math import comb

import pytest

from rlexp.evaluate import pass_at_k


def test_pass_at_k_values_from_the_spec():
    assert pass_at_k(10, 0, 1) == 0
    assert pass_at_k(10, 10, 5) == 1
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)


@pytest.mark.parametrize("n,c,k", [(8, 3, 2), (16, 5, 4), (20, 1, 10), (7, 6, 3)])
def test_pass_at_k_equals_the_combinatorial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_is_monotone_in_k_and_c():
    assert all(pass_at_k(16, 4, k) <= pass_at_k(16, 4, k + 1) for k in range(1, 16))
    assert all(pass_at_k(16, c, 4) <= pass_at_k(16, c + 1, 4) for c in range(16))


def test_pass_at_k_refuses_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)

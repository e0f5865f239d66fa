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


def test_prompts_that_could_not_be_scored_are_left_out_and_counted():
    from types import SimpleNamespace

    from rlexp.envs.base import Score
    from rlexp.evaluate import _summary

    good, bad, broken = Score(1.0, True, ""), Score(0.0, False, "x"), Score(None, False, "")
    cfg = SimpleNamespace(num_samples=2, k=[1])
    metrics = _summary([[good, bad], [broken, broken], [bad, bad]], cfg)
    assert metrics["n_prompts"] == 2 and metrics["n_unscored"] == 1
    assert metrics["success"] == 0.25 and metrics["pass@1"] == 0.25 and metrics["mean_reward"] == 0.25

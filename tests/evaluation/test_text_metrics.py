import pytest

from engine.evaluation.text_metrics import exact_match, lcs_length, rouge_l, rouge_l_multi, token_f1


def test_squad_metrics():
    assert exact_match("The Cat.", "cat") == 1.0
    assert exact_match("a cat", "dog") == 0.0
    assert token_f1("the black cat sat", "black cat") == pytest.approx(
        2 * (2 / 3) * 1 / (2 / 3 + 1)
    )
    assert token_f1("", "") == 1.0 and token_f1("cat", "") == 0.0 and token_f1("dog", "cat") == 0.0


def test_rouge_l_by_hand():
    # rouge-score's README example: LCS "the quick brown jumps the" = 5 tokens,
    # precision 5/8, recall 5/9, F = 0.5882.
    ref = "The quick brown fox jumps over the lazy dog"
    pred = "The quick brown dog jumps on the log."
    assert rouge_l(pred, ref) == pytest.approx(2 * (5 / 8) * (5 / 9) / (5 / 8 + 5 / 9))
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4  # CLRS's example
    assert rouge_l("Plants need sunlight!", "plants need SUNLIGHT") == 1.0
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0 and rouge_l("a b", "c d") == 0.0
    assert rouge_l_multi("cats eat fish", ["dogs bark", "cats eat mice"]) == pytest.approx(2 / 3)

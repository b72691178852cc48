"""The QA reader and the seq2seq encoder-decoder are registered models of their tasks.

Their trainers build them with ``create_model``; a seed gives exactly the weights the
classes built directly give (the golden QA and seq2seq runs rest on that), and the
classification task refuses them by family.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.models import create_model, get_model_config, list_models
from engine.models.text import Seq2SeqModel, SpanReader
from engine.spec import SpecError, load_spec
from engine.spec.model_recipes import TextRecipe
from engine.training.qa import make_reader
from engine.training.seq2seq import make_model

RECIPE = TextRecipe(dim=16, layers=1, heads=2)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_text_task_models_are_registered_in_their_task_families():
    assert {"span_reader", "seq2seq_transformer"} <= set(list_models())
    assert get_model_config("span_reader").family == "qa"
    assert get_model_config("seq2seq_transformer").family == "seq2seq"


def test_a_reader_from_the_registry_has_the_weights_of_the_class_built_directly():
    reader = make_reader(RECIPE, vocab=120, seq_len=40, seed=3)
    after_registry = torch.rand(4)  # the global RNG is left where the direct build leaves it
    torch.manual_seed(3)
    direct = SpanReader(120, 40, RECIPE.dim, RECIPE.layers, RECIPE.heads)
    assert isinstance(reader, SpanReader) and _same_weights(reader, direct)
    assert torch.equal(after_registry, torch.rand(4))


def test_an_encoder_decoder_from_the_registry_has_the_weights_of_the_class_built_directly():
    data = SimpleNamespace(source_ids=np.zeros((2, 20), np.int64),
                           target_ids=np.zeros((2, 12), np.int64), vocab_size=90,
                           start_id=1, end_id=2)  # fmt: skip
    model = make_model(RECIPE, data, seed=5)
    torch.manual_seed(5)
    direct = Seq2SeqModel(90, 22, RECIPE.dim, RECIPE.layers, RECIPE.heads, 1, 2)
    assert isinstance(model, Seq2SeqModel) and _same_weights(model, direct)


def test_a_span_reader_has_two_outputs_per_position():
    with pytest.raises(ValueError, match="num_classes must be 2, got 3"):
        create_model("span_reader", num_classes=3, input_shape=(40,))


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("replicas.model=span_reader",
         "replicas.model: 'span_reader' is a qa model, not a classifier"),
        ("evaluate.models[0].model=seq2seq_transformer",
         "evaluate.models[0].model: 'seq2seq_transformer' is a seq2seq model, not a classifier"),
    ],
)  # fmt: skip
def test_a_classification_spec_refuses_a_model_of_another_task(override, says):
    where = override.split(".model=")[0]
    with pytest.raises(SpecError, match=re.escape(says)):
        load_spec("tests/fixtures/tiny.yaml", [override, f"{where}.model_kwargs={{}}"])

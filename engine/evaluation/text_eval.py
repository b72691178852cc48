"""Per-sample quality of evaluated text models: QA spans and seq2seq generations.

QA: exact match (EM) and token F1 of each reader's best span, a miss where EM = 0;
seq2seq: ROUGE-L of each model's greedy decoding against the references and the token
NLL of the first reference, a miss where the decoding's ROUGE-L F against its best
reference is at most :data:`MISS_ROUGE_L` (read from the decoding alone, never from a
loss: the action score is the replicas' summed reference NLL, so a miss defined by the
model's NLL would have it predict a loss with a loss).
The metrics over the pool, the hard split and the bins come from the one
:func:`engine.evaluation.evaluate.evaluate_predictions` every task uses.
"""

from __future__ import annotations

import numpy as np

from engine.data.qa import QAData
from engine.data.seq2seq import Seq2SeqData
from engine.evaluation.text_metrics import exact_match, rouge_l_multi, token_f1

# A generation is correct when its ROUGE-L F (Lin, 2004) against the best reference is
# above this, a miss otherwise: the threshold Kuhn, Gal and Farquhar (ICLR 2023, "Semantic
# Uncertainty") use to call a free-form generation correct when scoring uncertainty
# measures as predictors of errors. Exact match is no choice here: the bundled QASC
# fusion references are whole sentences, and no greedy decoding of the tiny or the
# bundled spec matched one.
MISS_ROUGE_L = 0.3


def reader_quality(
    data: QAData, pool: np.ndarray, start: np.ndarray, end: np.ndarray
) -> dict[str, np.ndarray]:
    """EM and F1 of one QA reader's best span on every pool sample.

    Args:
        data: The QA samples.
        pool: Int (P,) sample ids of the pool.
        start: Int (N,) start of the reader's best span, for every sample.
        end: Int (N,) its end (inclusive).

    Returns:
        ``{"prediction": object (P,) span texts, "em": float (P,), "f1": float (P,),
        "miss": bool (P,) EM = 0}``.
    """
    preds = [data.span_text(i, start[i], end[i]) for i in pool]
    em = np.array([exact_match(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    f1 = np.array([token_f1(p, data.answers[i]) for p, i in zip(preds, pool, strict=True)])
    return {"prediction": np.asarray(preds, dtype=object), "em": em, "f1": f1, "miss": em == 0}


def generator_quality(
    data: Seq2SeqData, pool: np.ndarray, texts: list[str], loss: np.ndarray
) -> dict[str, np.ndarray]:
    """ROUGE-L, reference NLL and misses of one seq2seq model on every pool sample.

    Args:
        data: The pairs.
        pool: Int (P,) sample ids of the pool.
        texts: N greedy decodings (every sample).
        loss: Float (N,) token-averaged NLL of the first reference.

    Returns:
        ``{"prediction": object (P,) decodings, "rouge_l": float (P,), "nll": float (P,),
        "miss": bool (P,)}``; a miss is a ROUGE-L F of at most :data:`MISS_ROUGE_L`
        against the best reference, whatever the NLL (``loss`` is reported, never read
        for the miss).
    """
    rouge = np.array([rouge_l_multi(texts[i], data.references[i]) for i in pool])
    nll = np.asarray(loss)[pool]
    miss = rouge <= MISS_ROUGE_L
    preds = np.asarray([texts[i] for i in pool], dtype=object)
    return {"prediction": preds, "rouge_l": rouge, "nll": nll, "miss": miss}

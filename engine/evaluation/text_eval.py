"""Per-sample quality of evaluated text models: QA spans and seq2seq generations.

QA: exact match (EM) and token F1 of each reader's best span, a miss where EM = 0;
seq2seq: ROUGE-L of each model's greedy decoding against the references and the token
NLL of the first reference, a miss where that NLL is above the model's pool median.
The metrics over the pool, the hard split and the bins come from the one
:func:`engine.evaluation.evaluate.evaluate_predictions` every task uses.
"""

from __future__ import annotations

import numpy as np

from engine.data.qa import QAData
from engine.data.seq2seq import Seq2SeqData
from engine.evaluation.text_metrics import exact_match, rouge_l_multi, token_f1


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
    """ROUGE-L and reference NLL of one seq2seq model on every pool sample.

    Args:
        data: The pairs.
        pool: Int (P,) sample ids of the pool.
        texts: N greedy decodings (every sample).
        loss: Float (N,) token-averaged NLL of the first reference.

    Returns:
        ``{"prediction": object (P,) decodings, "rouge_l": float (P,), "nll": float (P,),
        "miss": bool (P,)}``; a miss is a reference NLL above the model's median on the
        pool (ROUGE-L has too many ties at 0 to split a pool of weak generations in two).
    """
    rouge = np.array([rouge_l_multi(texts[i], data.references[i]) for i in pool])
    nll = np.asarray(loss)[pool]
    miss = nll > np.median(nll)  # continuous, so an even split (ROUGE-L ties at 0 are common)
    preds = np.asarray([texts[i] for i in pool], dtype=object)
    return {"prediction": preds, "rouge_l": rouge, "nll": nll, "miss": miss}

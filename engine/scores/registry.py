"""Registry of difficulty scores: inputs, direction, options, and how the scoring pool feeds each.

The pool hands every accumulator one epoch of one sample block at a time as an
object with these attributes (all per-replica arrays are (R, N_b), mean
probabilities (N_b, K)): ``epoch``, ``labels``, ``mean_probs`` (None in the reduced
shard form), ``mean_entropy`` (N_b,), ``loss``, ``margin``, ``p_true``, ``correct``,
``el2n``, ``train_correct`` (int8, -1 where the sample was not presented to that
replica during the epoch; None unless recorded), ``input_grad`` ((R, N_b, D), or None
on epochs without gradients). A score's ``needs`` names the attributes it reads.

Every score has a **direction**: :func:`hardness` orients any score so that higher
means harder, and every consumer (selectors, bins, AUROC, correlations, mitigation,
reports) goes through it instead of assuming higher = harder.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from engine._util import unknown_name_error
from engine.scores.classification import ActionAccumulator, ConfusionAccumulator, action, confusion
from engine.scores.dynamics import (
    AUMAccumulator,
    DataMapAccumulator,
    EL2NAccumulator,
    ForgettingAccumulator,
    aum,
    data_map,
    el2n,
    forgetting_events,
)
from engine.scores.label_quality import (
    EnsembleAccumulator,
    FinalEpochAccumulator,
    ensemble_margin,
    ensemble_max_prob,
    normalized_margin,
    self_confidence,
)
from engine.scores.vog import VoGAccumulator, normalize_within_groups, vog

HIGHER_IS_HARDER = "higher = harder"  # how a direction is written in tables, plots and cards
LOWER_IS_HARDER = "lower = harder"
HARDNESS = "hardness"  # what a difficulty score measures: it ranks samples easy to hard
AMBIGUITY = "ambiguity"  # what data-map variability measures (Swayamdipta et al., 2020)
SCORE_MEASURES = (HARDNESS, AMBIGUITY)  # what a registered score may measure
MORE_AMBIGUOUS = "more ambiguous"  # how an ambiguity score's direction reads: "higher = ..."


@dataclass(frozen=True)
class ScoreOption:
    """One option of a score, set under the spec's ``score_options.<score>``.

    Attributes:
        default: The value used when the spec leaves the option out.
        kind: ``int`` or ``str``.
        choices: The allowed values of a ``str`` option.
        description: One line, with the paper the option follows.
    """

    default: object
    kind: type
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ScoreInfo:
    """What the engine needs to know about one score.

    Attributes:
        name: Registry name, also the scores-table column.
        fn: The in-memory NumPy function.
        accumulator: Makes a fresh streaming accumulator; takes the score's options
            as keyword arguments.
        feed: ``feed(acc, block)`` adds one epoch of one sample block.
        higher_is_harder: Direction: True when a higher value means a harder sample.
        needs_labels: Whether the score uses the given labels.
        needs: Block attributes it reads with its default options (see the module
            docstring).
        description: One line for ``hardbench scores``.
        result: ``result(acc) -> (N,)``; defaults to ``acc.result()``.
        options: Option name -> :class:`ScoreOption`.
        needs_for: ``needs_for(options)``: the block attributes read with those options
            (default: ``needs`` whatever the options).
        finalize: ``finalize(values, labels, groups, options) -> values`` applied once to
            the whole (N,) column after every block is scored, for scores normalised over
            samples of several blocks (``groups``: Int (N,) or None, e.g. the data split).
        measures: :data:`HARDNESS` (the default: the score ranks samples from easy to
            hard) or :data:`AMBIGUITY` (data-map variability): such a score is computed
            and reported like any other, but cuts no hard split
            (:meth:`refuse_as_hardness`); ``higher_is_harder`` then only orients it.
        not_hardness: For a score that measures no hardness, why, in one line: what
            :meth:`refuse_as_hardness` says.
    """

    name: str
    fn: Callable
    accumulator: Callable[..., object]
    feed: Callable[[object, object], None]
    higher_is_harder: bool
    needs_labels: bool
    needs: tuple[str, ...]
    description: str
    result: Callable[[object], np.ndarray] = lambda acc: acc.result()
    options: Mapping[str, ScoreOption] = field(default_factory=dict)
    needs_for: Callable[[dict], tuple[str, ...]] | None = None
    finalize: Callable[[np.ndarray, np.ndarray, np.ndarray | None, dict], np.ndarray] | None = None
    measures: str = HARDNESS
    not_hardness: str = ""

    def __post_init__(self) -> None:
        if self.measures not in SCORE_MEASURES:
            raise ValueError(
                f"score {self.name!r}: measures must be one of {', '.join(SCORE_MEASURES)}, "
                f"got {self.measures!r}"
            )
        if (self.measures == HARDNESS) == bool(self.not_hardness):
            raise ValueError(
                f"score {self.name!r}: not_hardness says why a score measuring no hardness "
                f"cuts no hard split; give it exactly when measures is not {HARDNESS!r}"
            )

    @property
    def direction(self) -> str:
        """``"higher = harder"`` or ``"lower = harder"``; ``"higher = more ambiguous"`` for ambiguity."""
        if self.measures == AMBIGUITY:
            return f"{'higher' if self.higher_is_harder else 'lower'} = {MORE_AMBIGUOUS}"
        return HIGHER_IS_HARDER if self.higher_is_harder else LOWER_IS_HARDER

    def refuse_as_hardness(self) -> None:
        """Refuse the score where samples are ranked by hardness (a hard split, its bins).

        Raises:
            ValueError: For a score that measures no hardness (:attr:`measures`), saying
                what it measures and what to use instead (:attr:`not_hardness`).
        """
        if self.measures != HARDNESS:
            raise ValueError(self.not_hardness)

    def resolve_options(self, given: Mapping[str, object] | None = None) -> dict:
        """Every option of the score, the given ones checked and the rest at their defaults.

        Raises:
            ValueError: For an unknown option (close matches listed) or a bad value.
        """
        given = dict(given or {})
        for key in given:
            if key not in self.options:
                close = difflib.get_close_matches(str(key), list(self.options), n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"score {self.name!r} has no option {key!r}{hint}; its options: "
                    f"{', '.join(self.options) or 'none'}"
                )
        out = {}
        for key, opt in self.options.items():
            value = given.get(key, opt.default)
            if opt.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{self.name}.{key} must be an integer, got {value!r}")
            if opt.kind is str and (not isinstance(value, str) or value not in opt.choices):
                raise ValueError(
                    f"{self.name}.{key} must be one of {', '.join(opt.choices)}, got {value!r}"
                )
            out[key] = value
        return out

    def inputs(self, options: Mapping[str, object] | None = None) -> tuple[str, ...]:
        """The block attributes the score reads with ``options`` (defaults if None)."""
        if self.needs_for is None:
            return self.needs
        return self.needs_for(self.resolve_options(options))

    def make_accumulator(self, options: Mapping[str, object] | None = None) -> object:
        """A fresh accumulator with ``options`` (checked, defaults filled in)."""
        return self.accumulator(**self.resolve_options(options))


_SCORES: dict[str, ScoreInfo] = {}


def register_score(info: ScoreInfo) -> ScoreInfo:
    """Add ``info`` to the registry; a second score with the same name is an error."""
    if info.name in _SCORES:
        raise ValueError(f"score {info.name!r} is already registered")
    _SCORES[info.name] = info
    return info


def get_score(name: str) -> ScoreInfo:
    """Return the registered score ``name``.

    Raises:
        ValueError: If no score has that name; the message lists close matches.
    """
    try:
        return _SCORES[name]
    except KeyError:
        raise unknown_name_error("score", name, _SCORES) from None


def list_scores() -> list[str]:
    """Return the names of all registered scores, sorted."""
    return sorted(_SCORES)


def hardness(name: str, values: np.ndarray) -> np.ndarray:
    """Score values oriented so that higher = harder, whatever the score's direction.

    The score itself for a higher-is-harder score, its negation for a lower-is-harder
    one (AUM, confidence, ...). Negation is exact, so ranks and ties are those of the
    score read in its own direction. Every consumer that ranks samples by difficulty
    (selectors, bins, AUROC, correlations, mitigation, reports) uses this.

    Args:
        name: Registered score name.
        values: Float (N,) values of that score (NaN stays NaN).

    Returns:
        Float64 (N,); higher = harder.
    """
    v = np.asarray(values, dtype=np.float64)
    return v if get_score(name).higher_is_harder else -v


def finalize_scores(
    columns: Mapping[str, np.ndarray],
    options: Mapping[str, Mapping[str, object]],
    labels: np.ndarray | None,
    groups: np.ndarray | None = None,
    *,
    has_classes: bool = True,
) -> dict[str, np.ndarray]:
    """Apply each score's whole-column step (e.g. VoG's per-class normalisation).

    Args:
        columns: Score name -> Float (N,) values from the scoring pool.
        options: Score name -> its options (defaults where missing).
        labels: Int (N,), or None for an unlabelled pool (label-aware steps are skipped).
        groups: Int or str (N,) group of each sample (the data split), or None.
        has_classes: False for a task whose labels are no classes (QA's gold span codes,
            seq2seq's zeros): every sample is then in one class, so a per-class step
            works within ``groups`` only.

    Returns:
        The same mapping with finalised columns.
    """
    out = dict(columns)
    for name, values in columns.items():
        info = _SCORES.get(name)
        if info is None or info.finalize is None or labels is None:
            continue
        classes = labels if has_classes else np.zeros(len(labels), np.int64)
        out[name] = info.finalize(values, classes, groups, info.resolve_options(options.get(name)))
    return out


def _per_replica(attr: str, method: str) -> Callable[[object, object], None]:
    """Feed that passes ``block.<attr>`` (R, N) as a one-epoch chunk (R, 1, N)."""

    def feed(acc: object, block: object) -> None:
        getattr(acc, method)(getattr(block, attr)[:, None])

    return feed


def _feed_vog(acc: VoGAccumulator, block: object) -> None:
    if block.input_grad is not None:
        acc.update(block.input_grad[:, None])


def _feed_forgetting(acc: ForgettingAccumulator, block: object) -> None:
    if acc.presentations:
        acc.update_presentations(block.train_correct[:, None])
    else:
        acc.update_correct(block.correct[:, None])


def _p_true_mean(block: object) -> np.ndarray:
    """(1, N) replica mean of p(given label): exact from the loss in top-k shards."""
    return block.p_true.mean(axis=0)[None]


for _name, _fn, _acc, _feed, _harder, _labels, _needs, _desc in [
    (
        "confusion", confusion, ConfusionAccumulator,
        lambda acc, b: acc.update_entropy(b.mean_entropy[None]),
        True, False, ("mean_entropy",),
        "entropy of the replica-mean distribution, averaged over epochs",
    ),
    (
        "action", action, ActionAccumulator, _per_replica("loss", "update"),
        True, True, ("loss",), "per-sample loss summed over epochs, averaged over replicas",
    ),
    (
        "aum", aum, AUMAccumulator, _per_replica("margin", "update_margins"),
        False, True, ("margin",), "area under the margin (given logit - largest other)",
    ),
    (
        "self_confidence", self_confidence, partial(FinalEpochAccumulator, "self_confidence"),
        lambda acc, b: acc.update_mean(b.labels, None, p_true=_p_true_mean(b)),
        False, True, ("p_true",), "p(given label) of the last epoch's replica mean",
    ),
    (
        "normalized_margin", normalized_margin, partial(FinalEpochAccumulator, "normalized_margin"),
        lambda acc, b: acc.update_mean(b.labels, b.mean_probs[None], p_true=_p_true_mean(b)),
        False, True, ("mean_probs", "p_true"),
        "(p(given) - max p(other) + 1) / 2 of the last epoch's mean",
    ),
    (
        "ensemble_max_prob", ensemble_max_prob, partial(EnsembleAccumulator, "max_prob"),
        lambda acc, b: acc.update_mean(b.mean_probs[None]),
        False, False, ("mean_probs",), "max probability of the replica mean, averaged over epochs",
    ),
    (
        "ensemble_margin", ensemble_margin, partial(EnsembleAccumulator, "margin"),
        lambda acc, b: acc.update_mean(b.mean_probs[None]),
        False, False, ("mean_probs",), "top-1 minus top-2 of the replica mean, averaged over epochs",
    ),
]:  # fmt: skip
    register_score(ScoreInfo(_name, _fn, _acc, _feed, _harder, _labels, _needs, _desc))

register_score(
    ScoreInfo(
        name="forgetting",
        fn=forgetting_events,
        accumulator=lambda counted="after_epoch": ForgettingAccumulator(
            presentations=counted == "during_training"
        ),
        feed=_feed_forgetting,
        higher_is_harder=True,
        needs_labels=True,
        needs=("correct",),
        description="correct-to-incorrect transitions, E per never-learning replica",
        options={
            "counted": ScoreOption(
                "after_epoch",
                str,
                ("after_epoch", "during_training"),
                "after_epoch: correctness of the epoch's end-of-epoch prediction (every "
                "sample); during_training: correctness at each mini-batch presentation, "
                "before the step, as Toneva et al. (2019) count (training samples only)",
            )
        },
        needs_for=lambda o: (
            ("train_correct",) if o["counted"] == "during_training" else ("correct",)
        ),
    )
)
register_score(
    ScoreInfo(
        name="el2n",
        fn=el2n,
        accumulator=lambda epoch=-1: EL2NAccumulator(epoch=epoch),
        feed=lambda acc, b: acc.update_el2n(b.el2n[:, None], epochs=[b.epoch]),
        higher_is_harder=True,
        needs_labels=True,
        needs=("el2n",),
        description="L2 norm of probabilities minus one-hot at one epoch (default the last)",
        options={
            "epoch": ScoreOption(
                -1,
                int,
                description="the epoch whose predictions are scored (0-based; negative counts "
                "from the last scored epoch). Paul et al. (2021) score early in training, "
                "e.g. epoch 20 of 200 on CIFAR-10",
            )
        },
    )
)
register_score(
    ScoreInfo(
        name="vog",
        fn=vog,
        accumulator=lambda normalize="class": VoGAccumulator(),
        feed=_feed_vog,
        higher_is_harder=True,
        needs_labels=True,
        needs=("input_grad",),
        description="std over checkpoints of the input gradient (images: true-class logit; "
        "text: log-likelihood of the label, gold span or reference w.r.t. the embedded "
        "tokens), z-scored per class",
        options={
            "normalize": ScoreOption(
                "class",
                str,
                ("class", "none"),
                "class: z-score within each (data split, class) as Agarwal et al. (2022) "
                "normalise within class (within each data split for QA and seq2seq, which "
                "have no classes); none: the raw mean per-element std",
            )
        },
        finalize=lambda values, labels, groups, o: (
            normalize_within_groups(values, labels, groups) if o["normalize"] == "class" else values
        ),
    )
)


def _data_map_field(field: str, acc: DataMapAccumulator) -> np.ndarray:
    return acc.result()[field]


# Why variability cuts no hard split: the data-map regions (Swayamdipta et al., 2020).
VARIABILITY_NOT_HARDNESS = (
    "variability measures ambiguity, not hardness: in a data map (Swayamdipta et al., 2020) "
    "hard-to-learn samples have low confidence and low variability, ambiguous ones high "
    "variability; cut the hard split by confidence, correctness, aum or confusion "
    "(variability stays a score column and in the data map)"
)

for _field, _harder, _desc, _measures, _why in [
    ("confidence", False, "data map: mean over epochs of p(given label)", HARDNESS, ""),
    ("variability", True, "data map: std over epochs of p(given label); ambiguity, not hardness "
     "(cuts no hard split)", AMBIGUITY, VARIABILITY_NOT_HARDNESS),
    ("correctness", False, "data map: fraction of epochs classified correctly", HARDNESS, ""),
]:  # fmt: skip
    register_score(
        ScoreInfo(
            name=_field,
            fn=lambda labels, pred_probs, _f=_field: data_map(labels, pred_probs)[_f],
            accumulator=DataMapAccumulator,
            feed=lambda acc, b: acc.update_scalars(b.p_true[:, None], b.correct[:, None]),
            higher_is_harder=_harder,
            needs_labels=True,
            needs=("p_true", "correct"),
            description=_desc,
            result=partial(_data_map_field, _field),
            measures=_measures,
            not_hardness=_why,
        )
    )

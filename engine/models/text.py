"""Text models trained by the engine from scratch (no pretrained weights).

Classifiers (family ``text``): inputs are int64 token ids (B, L) right-padded with 0.
Padding never reaches an output: ``text_mlp`` averages only the non-pad embeddings,
``text_transformer`` masks padded positions in attention and reads the first ([CLS])
position; so a sample gives the same logits whatever the padded length.

The extractive-QA reader ``span_reader`` (family ``qa``) and the encoder-decoder
``seq2seq_transformer`` (family ``seq2seq``) are the models of those tasks: their
trainers build them with ``create_model`` (:mod:`engine.training.qa`,
:mod:`engine.training.seq2seq`); they read more than token ids, so the classification
task refuses them.

Every text model exposes its token-embedding layer (:func:`token_embedding`; the
encoder-decoder's is the encoder's, of the source): VoG on text differentiates the
log-likelihood of the label, gold span or reference w.r.t. its outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.registry import ModelConfig, create_model, get_model_config, register_model

DEFAULT_VOCAB = 8000  # matches engine.data.text.VOCAB_SIZE
TEXT_FAMILY = "text"  # the registry family of the engine's own token-id classifiers
TOKEN_ID_FAMILIES = (TEXT_FAMILY, "hf")  # registry families whose models read token ids
PROBE_CLASSES = 2  # classes of the meta-device model :func:`embeds_tokens` builds
PROBE_LENGTH = 8  # token positions of that model
SPAN_OUTPUTS = 2  # a span reader's outputs per position: the start and the end logit


class MeanPoolMLP(nn.Module):
    """Embedding, mean over non-pad tokens, then an MLP."""

    def __init__(self, vocab: int, dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # noqa: D102
        mask = (ids != 0).unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def token_embedding(self) -> nn.Embedding:
        """The token-embedding layer, whose outputs VoG differentiates."""
        return self.embed


class SmallTransformer(nn.Module):
    """A BERT-style encoder built from a ``transformers`` config (random init, no dropout)."""

    def __init__(self, vocab: int, max_len: int, dim: int, layers: int, heads: int,
                 num_classes: int) -> None:  # fmt: skip
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * dim, max_position_embeddings=max_len, num_labels=num_classes,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
        )  # fmt: skip
        self.model = BertForSequenceClassification(config)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.model(input_ids=ids, attention_mask=(ids != 0).long()).logits

    def token_embedding(self) -> nn.Embedding:
        """The word embeddings (before positions, LayerNorm): what VoG differentiates."""
        return self.model.get_input_embeddings()


@register_model(ModelConfig("text_mlp", "text", "token embeddings, mean over non-pad tokens, MLP"))
def text_mlp(*, num_classes: int, input_shape: tuple[int, ...], vocab: int = DEFAULT_VOCAB,
             dim: int = 64, hidden: int = 64) -> nn.Module:  # fmt: skip
    """Mean-pooled embedding classifier over (L,) token ids."""
    if len(input_shape) != 1:
        raise ValueError(f"text_mlp takes (L,) token ids, got input shape {input_shape}")
    return MeanPoolMLP(vocab, dim, hidden, num_classes)


@register_model(
    ModelConfig("text_transformer", "text", "small BERT-style encoder from a transformers config")
)
def text_transformer(*, num_classes: int, input_shape: tuple[int, ...], vocab: int = DEFAULT_VOCAB,
                     dim: int = 64, layers: int = 2, heads: int = 2) -> nn.Module:  # fmt: skip
    """BERT encoder over (L,) token ids, classifying from the [CLS] position."""
    if len(input_shape) != 1:
        raise ValueError(f"text_transformer takes (L,) token ids, got input shape {input_shape}")
    return SmallTransformer(vocab, input_shape[0], dim, layers, heads, num_classes)


def token_embedding(model: nn.Module) -> nn.Embedding | None:
    """The token-embedding layer of a text model, or None when it exposes none.

    A model over token ids exposes it with a ``token_embedding()`` method returning an
    ``nn.Embedding`` whose ``padding_idx`` is the padding id; VoG on text
    (:mod:`engine.training.embedding_gradients`) differentiates its outputs.
    """
    get = getattr(model, "token_embedding", None)
    layer = get() if callable(get) else None
    return layer if isinstance(layer, nn.Embedding) else None


def embeds_tokens(name: str, model_kwargs: dict | None = None) -> bool:
    """Whether registered model ``name`` reads token ids through a :func:`token_embedding` layer.

    Only the engine's ``text`` family is built to find out, on the meta device (no
    memory, no weights); any other family (images, ``hf`` classifiers) answers False.
    """
    if get_model_config(name).family != TEXT_FAMILY:
        return False
    with torch.device("meta"):
        model = create_model(
            name, num_classes=PROBE_CLASSES, input_shape=(PROBE_LENGTH,), **(model_kwargs or {})
        )
    layer = token_embedding(model)
    return layer is not None and layer.padding_idx is not None


class SpanReader(nn.Module):
    """Extractive QA reader: a BERT encoder with a start/end head (random init, no dropout).

    Input: int64 token ids (B, L) right-padded with 0, and token types (B, L). Output:
    start and end logits (B, L); positions outside ``context_mask`` get -inf, so a
    softmax over a row is a distribution over the passage window only.
    """

    def __init__(self, vocab: int, max_len: int, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        from transformers import BertConfig, BertForQuestionAnswering

        config = BertConfig(
            vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * dim, max_position_embeddings=max_len, type_vocab_size=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
        )  # fmt: skip
        self.model = BertForQuestionAnswering(config)

    def forward(
        self, ids: torch.Tensor, types: torch.Tensor, context_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked start and end logits, each (B, L)."""
        out = self.model(input_ids=ids, token_type_ids=types, attention_mask=(ids != 0).long())
        outside = ~context_mask
        return (
            out.start_logits.masked_fill(outside, float("-inf")),
            out.end_logits.masked_fill(outside, float("-inf")),
        )

    def token_embedding(self) -> nn.Embedding:
        """The word embeddings of the question and passage ids: what VoG differentiates.

        Their outputs come before positions, token types and LayerNorm are added.
        """
        return self.model.get_input_embeddings()


@register_model(
    ModelConfig("span_reader", "qa", "extractive-QA reader: BERT encoder, start/end span heads",
                num_classes=SPAN_OUTPUTS)
)  # fmt: skip
def span_reader(*, num_classes: int, input_shape: tuple[int, ...], vocab: int = DEFAULT_VOCAB,
                dim: int = 64, layers: int = 2, heads: int = 2) -> SpanReader:  # fmt: skip
    """Span reader over (L,) question-and-passage token ids (:class:`SpanReader`)."""
    if num_classes != SPAN_OUTPUTS:
        raise ValueError(
            f"span_reader scores a start and an end at each position: num_classes must be "
            f"{SPAN_OUTPUTS}, got {num_classes}"
        )
    if len(input_shape) != 1:
        raise ValueError(f"span_reader takes (L,) token ids, got input shape {input_shape}")
    return SpanReader(vocab, input_shape[0], dim, layers, heads)


class Seq2SeqModel(nn.Module):
    """A small BART-config encoder-decoder (random init, no dropout) for teacher forcing.

    Input: source ids (B, S) and decoder ids (B, T), both right-padded with 0. Output:
    next-token logits (B, T, V). Padding is masked in the encoder and in cross
    attention; the decoder is causal, so right padding never changes an earlier
    position's logits.
    """

    def __init__(self, vocab: int, max_len: int, dim: int, layers: int, heads: int,
                 start_id: int, end_id: int) -> None:  # fmt: skip
        super().__init__()
        from transformers import BartConfig, BartForConditionalGeneration

        config = BartConfig(
            vocab_size=vocab, d_model=dim, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=heads, decoder_attention_heads=heads,
            encoder_ffn_dim=4 * dim, decoder_ffn_dim=4 * dim, max_position_embeddings=max_len,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, pad_token_id=0,
            bos_token_id=start_id, eos_token_id=end_id, decoder_start_token_id=start_id,
            forced_eos_token_id=None,
        )  # fmt: skip
        self.model = BartForConditionalGeneration(config)

    def forward(self, source: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) under teacher forcing."""
        return self.logits_of(self.hidden(source, decoder))

    def hidden(self, source: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (B, T, D) under teacher forcing."""
        return self.model.model(
            input_ids=source, attention_mask=(source != 0).long(), decoder_input_ids=decoder
        ).last_hidden_state

    def token_embedding(self) -> nn.Embedding:
        """The encoder's token embedding, of the source ids: what VoG differentiates.

        The decoder embeds its inputs (the reference shifted right) with its own layer
        (weights tied to this one), so hooking this layer sees the source only.
        """
        return self.model.get_encoder().embed_tokens

    def logits_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (..., V) of decoder hidden states (..., D).

        Scoring only the target's positions (``hidden[mask]``) skips the padding's share
        of the largest matrix product.
        """
        return self.model.lm_head(hidden) + self.model.final_logits_bias[0]

    @torch.no_grad()
    def greedy(
        self, source: torch.Tensor, start_id: int, end_id: int, max_len: int
    ) -> torch.Tensor:
        """Greedy decoding: token ids (B, <= max_len), 0 after each row's end id."""
        enc = self.model.get_encoder()(input_ids=source, attention_mask=(source != 0).long())
        out = torch.full((len(source), 1), start_id, dtype=torch.long, device=source.device)
        done = torch.zeros(len(source), dtype=torch.bool, device=source.device)
        for _ in range(max_len):
            logits = self.model(
                encoder_outputs=enc, attention_mask=(source != 0).long(), decoder_input_ids=out
            ).logits[:, -1]
            nxt = logits.argmax(-1).masked_fill(done, 0)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == end_id
            if done.all():
                break
        return out[:, 1:]


@register_model(ModelConfig("seq2seq_transformer", "seq2seq", "small BART-config encoder-decoder"))
def seq2seq_transformer(*, num_classes: int, input_shape: tuple[int, ...], start_id: int,
                        end_id: int, dim: int = 64, layers: int = 2,
                        heads: int = 2) -> Seq2SeqModel:  # fmt: skip
    """Encoder-decoder over token ids (:class:`Seq2SeqModel`).

    ``num_classes`` is the vocabulary (the next-token head's outputs); ``input_shape``
    is ``(P,)``, the positions it embeds (the longer of source and target, and more).
    """
    if len(input_shape) != 1:
        raise ValueError(f"seq2seq_transformer takes (P,) positions, got input shape {input_shape}")
    return Seq2SeqModel(num_classes, input_shape[0], dim, layers, heads, start_id, end_id)

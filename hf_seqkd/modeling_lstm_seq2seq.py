"""PyTorch LSTM encoder-decoder with Luong global attention and input feeding.

The model of Luong, Pham & Manning (2015), "Effective Approaches to Attention-based Neural Machine Translation",
as used for teachers and students by Kim & Rush (2016), "Sequence-Level Knowledge Distillation":

    encoder:    h_s = LSTM^L(x_s)                                   stacked, optionally bidirectional
    decoder:    h_t = LSTM^L([y_{t-1}; h~_{t-1}], h_{t-1})          input feeding (Luong sec. 3.3)
    attention:  a_t(s) = softmax_s(score(h_t, h_s))                 global attention (Luong eq. 7)
                score = h_t^T h_s | h_t^T W_a h_s | v_a^T tanh(W_a [h_t; h_s])   dot | general | concat (eq. 8)
                c_t = sum_s a_t(s) h_s
    output:     h~_t = tanh(W_c [c_t; h_t])                         attentional vector (eq. 5)
                p(y_t | y_<t, x) = softmax(W_s h~_t)                (eq. 6)

Decoding runs one decoder step per new token. Everything that step needs travels in one `LSTMDecoderState`: the
LSTM (h, c), the input-feed vector h~_{t-1}, and the encoder memory with its keys W_a h_s, which are computed once per
source. `generate()` of transformers hands that state back to `forward` (as `cache` from transformers 5.24, as
`past_key_values` before) and calls `LSTMDecoderState.reorder_cache` during beam search; `_decoder_state_argument`
and `DECODER_STATE_FIELD` are the one place that knows the two names. Where a search asks for token ids only,
`generate()` runs this model's own search loops (`_sample`, `_beam_search`: the same tokens as GenerationMixin's, with
less bookkeeping per step), which call the decoder's one-token `step` directly.

This file (with `configuration_lstm_seq2seq.py` and `sparse_weights.py`) is also what `save_pretrained` copies next
to the weights for `trust_remote_code` loading, so it imports nothing else from hf_seqkd.
"""

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from .configuration_lstm_seq2seq import LSTMSeq2SeqConfig
from .sparse_weights import load_pruned

# transformers 5.24 renamed the decoder state that `generate()` passes to `forward` and reads back from its output:
# `past_key_values` became `cache`. The output classes say which name this release uses; `generate()` passes the
# state under the same name.
DECODER_STATE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def _no_hidden_states(kwargs: dict) -> None:
    """`output_hidden_states` is refused, not ignored: the stacked LSTMs (one fused `nn.LSTM`, cells run step by step)
    keep no per-layer states to return."""
    if kwargs.get("output_hidden_states"):
        raise ValueError(
            "output_hidden_states=True: the LSTM model keeps no per-layer hidden states to return. Its top layers' "
            "are in the outputs: `encoder_last_hidden_state` (h_s) and, from LSTMSeq2SeqModel, `last_hidden_state`."
        )


def _decoding_step_output(logits, state, cross_attentions, encoder_last_hidden_state) -> Seq2SeqLMOutput:
    """
    The `Seq2SeqLMOutput` of a decoding step, built without ModelOutput's generic `__post_init__`, which walks the
    dataclass fields on every call (28 us here, 5-10% of a batch-1 step): the same items, in the same order, and the
    same attributes (unset fields read None from the class), as the test against the normal constructor checks.
    """
    output = Seq2SeqLMOutput.__new__(Seq2SeqLMOutput)
    for name, value in (
        ("logits", logits),
        (DECODER_STATE_FIELD, state),
        ("cross_attentions", cross_attentions),
        ("encoder_last_hidden_state", encoder_last_hidden_state),
    ):
        if value is not None:
            OrderedDict.__setitem__(output, name, value)
            output.__dict__[name] = value
    return output


def _untracked_search(search):
    """
    Runs one of the model's own search loops under `torch.inference_mode` (generate() itself only disables
    gradients): without autograd's version counters and view tracking each small op of a step costs less, 5-16% of
    the time of a one-sentence search (benchmarks/bench_inference_mode.py, 2x128, greedy and beam 5). The sequences
    are cloned outside it: an inference tensor cannot be changed in place outside inference mode, and generate()'s
    callers may do that.
    """

    @functools.wraps(search)
    def run(*args, **kwargs):
        with torch.inference_mode():
            sequences = search(*args, **kwargs)
        return sequences.clone()

    return run


def _decoder_state_argument(cache, past_key_values):
    """The decoder state passed to `forward` under either name (`cache` or the older `past_key_values`)."""
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("Pass the decoder state once, as `cache` (or `past_key_values`), not as both.")
    return cache if cache is not None else past_key_values


@dataclass
class LSTMEncoderOutput(ModelOutput):
    """
    Output of [`LSTMSeq2SeqEncoder`]. Every tensor is batch-first, because `generate()` expands encoder outputs along
    dim 0 for beam search.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`):
            Top-layer encoder states h_s (zeros at padding positions).
        final_hidden_state (`torch.FloatTensor` of shape `(batch_size, encoder_layers, hidden_size)`):
            Final h of each encoder layer (both directions concatenated for a bidirectional encoder).
        final_cell_state (`torch.FloatTensor` of shape `(batch_size, encoder_layers, hidden_size)`):
            Final c of each encoder layer.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_hidden_state: torch.FloatTensor | None = None
    final_cell_state: torch.FloatTensor | None = None


class LSTMDecoderState:
    """
    Everything the decoder carries from one step to the next; the `cache` (formerly `past_key_values`) of this model.

    Args:
        hidden (`tuple` of `decoder_layers` `torch.FloatTensor` of shape `(batch_size, hidden_size)`): LSTM h of each
            layer.
        cell (`tuple` of `decoder_layers` `torch.FloatTensor` of shape `(batch_size, hidden_size)`): LSTM c of each
            layer.
        input_feed (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): the last attentional vector h~.
        memory (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`): encoder states h_s.
        keys (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`): h_s projected for the score
            (W_a h_s for `general`), computed once per source.
        memory_bias (`torch.FloatTensor` of shape `(batch_size, 1, source_length)`): 0 on source tokens, a large
            negative number on padding; added to the attention scores.
        seen_tokens (`int`): number of target tokens consumed so far.
        step_weights (`DecodingStepWeights`, *optional*): the weights of the decoding step without autograd, chosen
            once per source batch; None where the decoder takes its general path.
    """

    def __init__(self, hidden, cell, input_feed, memory, keys, memory_bias, seen_tokens=0, step_weights=None):
        self.hidden = hidden
        self.cell = cell
        self.input_feed = input_feed
        self.memory = memory
        self.keys = keys
        self.memory_bias = memory_bias
        self.seen_tokens = seen_tokens
        self.step_weights = step_weights

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """
        Keeps, for every row, the recurrent state of the beam it continues (in place, as `generate()` expects).

        Beam search only ever picks `beam_idx` among the beams of the same source, and those beams share one copy
        of the source's memory, keys and mask, so only h, c and the input feed are gathered (as OpenNMT-py does;
        re-gathering the memory every step costs as much as the attention itself).
        """
        self.hidden = tuple(h.index_select(0, beam_idx) for h in self.hidden)
        self.cell = tuple(c.index_select(0, beam_idx) for c in self.cell)
        self.input_feed = self.input_feed.index_select(0, beam_idx)


class DecodingStepWeights(NamedTuple):
    """
    What one decoding step without autograd multiplies by (`LSTMSeq2SeqDecoder.decoding_step_weights`).

    Args:
        cells: per decoder layer, (W_ih, W_hh, b_ih, b_hh) for `torch.lstm_cell`.
        output_proj: (2H, H), W_c transposed: W_c [c_t; h_t] = [c_t; h_t] @ output_proj.
        transposed: whether these are transposed copies (a search of a few rows); the output layer W_s follows.
    """

    cells: tuple
    output_proj: torch.Tensor
    transposed: bool = False


class TransposedCopies:
    """
    Contiguous transposed copies of weights, W.T as (in, out), for the decoding step of searches of a few rows: there
    x @ W.T multiplies 22-45% faster from such a copy than from W as stored (5 rows: beam 5 of one sentence, measured
    in README, Speed). A copy is remade when its weight changes: another tensor (`to`, a new parameter) or an in-place
    update (optimizer step, `load_state_dict`, pruning), which bumps the tensor's version counter.
    """

    def __init__(self):
        self._copies = {}

    def __call__(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.shape)
        entry = self._copies.get(name)
        if entry is None or entry[0] != key:
            entry = (key, weight.detach().t().contiguous())
            self._copies[name] = entry
        return entry[1]


class LuongAttention(nn.Module):
    """Global attention with Luong's `dot`, `general` or `concat` score, and the attentional vector h~."""

    def __init__(self, hidden_size: int, score: str):
        super().__init__()
        self.score = score
        if score in ("general", "concat"):
            self.key_proj = nn.Linear(hidden_size, hidden_size, bias=False)  # W_a (its h_s half for concat)
        if score == "concat":
            self.query_proj = nn.Linear(hidden_size, hidden_size, bias=False)  # the h_t half of W_a
            self.v = nn.Linear(hidden_size, 1, bias=False)  # v_a
        self.output_proj = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # W_c

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends on the source only; computed once per source."""
        return memory if self.score == "dot" else self.key_proj(memory)  # (B, S, H)

    def forward(self, query, memory, keys, memory_bias):
        """
        Args:
            query: (B, T, H) decoder top-layer states h_t.
            memory: (B, S, H) encoder states h_s.
            keys: (B, S, H) from `project_keys(memory)`.
            memory_bias: (B, 1, S) 0 on tokens, large negative on padding.

        Returns:
            attentional (B, T, H) h~_t and the attention weights (B, T, S).
        """
        if self.score == "concat":
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, H)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
            weights = torch.softmax(scores + memory_bias, dim=-1)  # (B, T, S)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
            weights = torch.softmax(scores + memory_bias, dim=-1)  # (B, T, S)
        context = torch.bmm(weights, memory)  # (B, T, H)
        attentional = torch.tanh(self.output_proj(torch.cat([context, query], dim=-1)))  # (B, T, H)
        return attentional, weights


def _check_ids(name: str, ids: torch.Tensor, vocab_size: int, allow_ignore_index: bool = False) -> None:
    values = ids[ids != -100] if allow_ignore_index else ids
    if values.numel() and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(
            f"`{name}` holds token ids in [{int(values.min())}, {int(values.max())}] but the vocabulary has "
            f"{vocab_size} tokens (ids 0..{vocab_size - 1}). Was it encoded with another model's tokenizer?"
        )


class LSTMSeq2SeqEncoder(nn.Module):
    """Stacked (optionally bidirectional) LSTM over the embedded source; padding is packed away, never read."""

    def __init__(self, config: LSTMSeq2SeqConfig):
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional_encoder else 1
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_size,
            config.hidden_size // directions,
            num_layers=config.encoder_layers,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
            bidirectional=config.bidirectional_encoder,
            batch_first=True,
        )

    def _check_source(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Validates the source batch and returns its lengths (B,)."""
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch_size, source_length), got {tuple(input_ids.shape)}.")
        batch_size, source_length = input_ids.shape
        if batch_size == 0:
            raise ValueError("Empty batch: `input_ids` has no rows. Pass at least one source sequence.")
        if source_length == 0:
            raise ValueError("Empty source: `input_ids` has no tokens. Every source needs at least its EOS token.")
        if source_length > self.config.max_source_length:
            raise ValueError(
                f"Source of {source_length} tokens is longer than max_source_length={self.config.max_source_length}. "
                f"Truncate when tokenizing (`tokenizer(..., truncation=True, max_length="
                f"{self.config.max_source_length})`) or raise `max_source_length` in the config."
            )
        _check_ids("input_ids", input_ids, self.config.vocab_size)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)} but `input_ids` has "
                f"{tuple(input_ids.shape)}."
            )
        lengths = attention_mask.sum(dim=1)  # (B,)
        if (lengths == 0).any():
            rows = (lengths == 0).nonzero().flatten().tolist()
            raise ValueError(f"Empty source in rows {rows}: the attention mask has no token there.")
        positions = torch.arange(source_length, device=lengths.device)  # (S,)
        if not torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]):
            raise ValueError(
                "The LSTM encoder needs right padding (tokens first, then padding); "
                "set tokenizer.padding_side = 'right'."
            )
        return lengths

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LSTMEncoderOutput:
        """
        Encodes right-padded sources. `return_dict=False` gives the tuple form; `output_attentions` concerns the
        decoder's attention over the source (an LSTM encoder has none of its own); `output_hidden_states` is refused.
        """
        _no_hidden_states(kwargs)
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id).long()
        lengths = self._check_source(input_ids, attention_mask)
        batch_size, source_length = input_ids.shape

        embeds = self.dropout(self.embed_tokens(input_ids))  # (B, S, E)
        if bool((lengths == source_length).all()):  # no padding: skip packing
            memory, (hidden, cell) = self.lstm(embeds)  # (B, S, H), (L * D, B, H / D)
        else:
            packed = pack_padded_sequence(embeds, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_memory, (hidden, cell) = self.lstm(packed)
            memory, _ = pad_packed_sequence(packed_memory, batch_first=True, total_length=source_length)  # (B, S, H)

        if self.config.bidirectional_encoder:
            # (L * 2, B, H / 2) -> (L, B, H): each layer's [forward; backward] final states.
            layers = self.config.encoder_layers
            hidden = hidden.view(layers, 2, batch_size, -1).permute(0, 2, 1, 3).reshape(layers, batch_size, -1)
            cell = cell.view(layers, 2, batch_size, -1).permute(0, 2, 1, 3).reshape(layers, batch_size, -1)
        return LSTMEncoderOutput(
            last_hidden_state=memory,  # (B, S, H)
            final_hidden_state=hidden.transpose(0, 1),  # (B, L, H)
            final_cell_state=cell.transpose(0, 1),  # (B, L, H)
        )


class StackedLSTM(nn.Module):
    """
    LSTM cells stacked with dropout between layers, run one time step at a time (as OpenNMT-py's StackedLSTM).

    Input feeding makes every decoder step depend on the previous attentional vector, so the decoder cannot hand a
    whole sequence to `nn.LSTM`; one `nn.LSTMCell` per layer trains about 20% faster here than `nn.LSTM` called on
    one step at a time. The cells' weights are applied with `torch.lstm_cell` directly (one fused call per layer and
    step, no module dispatch) while they are plain `nn.LSTMCell`s; a replaced cell (e.g. a dynamically quantized one)
    is called as a module.

    `known_size` leading features of layer 0's input are known for all steps in advance (the target embeddings
    under input feeding): `known_input_gates` projects them for every step in one GEMM, and each step then only
    multiplies the remaining (recurrent) features.
    """

    def __init__(self, num_layers: int, input_size: int, hidden_size: int, dropout: float, known_size: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.LSTMCell(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.known_size = known_size

    def known_input_gates(self, known: torch.Tensor) -> torch.Tensor | None:
        """
        W_ih[:, :K] x + b_ih for all steps at once: (B, T, K) -> (B, T, 4H); None when layer 0 is not a plain
        `nn.LSTMCell` (then each step passes its whole input).
        """
        layer = self.layers[0]
        if not self.known_size or type(layer) is not nn.LSTMCell:
            return None
        return nn.functional.linear(known, layer.weight_ih[:, : self.known_size], layer.bias_ih)

    def rest_weight(self, steps: int) -> torch.Tensor:
        """
        Layer 0's input weight for the features after the known ones, (4H, I - K): taken once per call of the decoder,
        and made contiguous when it serves several steps (teacher forcing), so that no step's backward copies or
        zero-pads it again.
        """
        weight = self.layers[0].weight_ih[:, self.known_size :]
        return weight.contiguous() if steps > 1 else weight

    def forward(
        self,
        inputs: torch.Tensor,
        hidden: tuple,
        cell: tuple,
        known_gates: torch.Tensor | None = None,
        rest_weight: torch.Tensor | None = None,
    ):
        """
        inputs (B, I): layer 0's input, or with `known_gates` (B, 4H) from `known_input_gates`, only its features
        after the first `known_size` (multiplied by `rest_weight`). hidden and cell: one (B, H) tensor per layer.
        Returns the top h (B, H), hidden, cell.
        """
        new_hidden, new_cell = [], []
        last = len(self.layers) - 1
        drop = self.training and self.dropout.p > 0
        for i, layer in enumerate(self.layers):
            if i == 0 and known_gates is not None:
                # gates = (W_ih[:, :K] x_known + b_ih) + W_ih[:, K:] x_rest + W_hh h + b_hh
                h, c = torch.lstm_cell(
                    inputs,
                    (hidden[0], cell[0]),
                    self.rest_weight(1) if rest_weight is None else rest_weight,
                    layer.weight_hh,
                    known_gates,
                    layer.bias_hh,
                )
            elif type(layer) is nn.LSTMCell:
                h, c = torch.lstm_cell(
                    inputs, (hidden[i], cell[i]), layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh
                )
            else:
                h, c = layer(inputs, (hidden[i], cell[i]))  # (B, H) each
            inputs = self.dropout(h) if drop and i < last else h
            new_hidden.append(h)
            new_cell.append(c)
        return inputs, tuple(new_hidden), tuple(new_cell)


class LSTMSeq2SeqDecoder(nn.Module):
    """
    Stacked LSTM decoder with input feeding and global attention; returns the attentional vectors h~.

    Without autograd (generate(), scoring), a decoder of plain parts runs `decode`: the cells' and W_c's weights
    applied directly (no module dispatch) and the score and its padding bias in one `baddbmm`. A search of at most
    `transposed_weight_rows` rows multiplies by transposed copies of the weights (`TransposedCopies`).
    """

    # Searches of at most this many rows (batch x beams) multiply by contiguous transposed copies of the weights.
    transposed_weight_rows = 8

    def __init__(self, config: LSTMSeq2SeqConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(
            config.decoder_vocab_size, config.embedding_size, padding_idx=config.pad_token_id
        )
        self.dropout = nn.Dropout(config.dropout)
        input_size = config.embedding_size + (config.hidden_size if config.input_feeding else 0)
        self.lstm = StackedLSTM(
            config.decoder_layers,
            input_size,
            config.hidden_size,
            config.dropout,
            known_size=config.embedding_size if config.input_feeding else 0,
        )
        self.attention = LuongAttention(config.hidden_size, config.attention_score)
        self.transposed_copies = TransposedCopies()

    def decoding_step_weights(self, transposed: bool) -> DecodingStepWeights | None:
        """
        The weights of the decoding step, transposed copies or as stored; None when a part is not the plain module
        the step assumes (a replaced cell or layer, e.g. a quantized one, or the `concat` score): the decoder then
        calls its modules.
        """
        layers, attention = self.lstm.layers, self.attention
        if (
            type(self.embed_tokens) is not nn.Embedding
            or any(type(layer) is not nn.LSTMCell for layer in layers)
            or attention.score == "concat"
            or type(attention.output_proj) is not nn.Linear
        ):
            return None
        if not transposed:
            cells = tuple((layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh) for layer in layers)
            return DecodingStepWeights(cells, attention.output_proj.weight.t())
        copy = self.transposed_copies
        cells = tuple(
            (
                copy(f"lstm.layers.{i}.weight_ih", layer.weight_ih).t(),  # (4H, I) view of an (I, 4H) copy
                copy(f"lstm.layers.{i}.weight_hh", layer.weight_hh).t(),
                layer.bias_ih,
                layer.bias_hh,
            )
            for i, layer in enumerate(layers)
        )
        return DecodingStepWeights(cells, copy("attention.output_proj.weight", attention.output_proj.weight), True)

    def init_state(self, encoder_outputs: LSTMEncoderOutput, attention_mask: torch.Tensor) -> LSTMDecoderState:
        """The decoder state before the first target token: one call per source batch."""
        memory = encoder_outputs.last_hidden_state  # (B, S, H)
        batch_size = memory.shape[0]
        if self.config.decoder_init == "encoder_final":
            hidden = encoder_outputs.final_hidden_state.unbind(1)  # L x (B, H)
            cell = encoder_outputs.final_cell_state.unbind(1)  # L x (B, H)
        else:
            hidden = cell = (memory.new_zeros(batch_size, self.config.hidden_size),) * self.config.decoder_layers
        memory_bias = (1.0 - attention_mask[:, None, :].to(memory.dtype)) * torch.finfo(memory.dtype).min  # (B, 1, S)
        step_weights = None
        if not torch.is_grad_enabled() and not self.training:
            step_weights = self.decoding_step_weights(transposed=batch_size <= self.transposed_weight_rows)
        return LSTMDecoderState(
            hidden=hidden,
            cell=cell,
            input_feed=memory.new_zeros(batch_size, self.config.hidden_size),  # h~_0 = 0
            memory=memory,
            keys=self.attention.project_keys(memory),  # (B, S, H), once per source
            memory_bias=memory_bias,
            step_weights=step_weights,
        )

    def step(self, tokens: torch.LongTensor, state: LSTMDecoderState):
        """
        One decoding step without autograd and dropout for one token per row, `tokens` (B,), from a state made that
        way (`state.step_weights` set), which it advances in place. Returns h~_t (B, H) and the attention (B, 1, S).
        """
        weights = state.step_weights
        inputs = self.embed_tokens.weight.index_select(0, tokens)  # (B, E)
        if self.config.input_feeding:
            inputs = torch.cat([inputs, state.input_feed], dim=-1)  # (B, E + H)
        hidden, cell = list(state.hidden), list(state.cell)
        for layer, (weight_ih, weight_hh, bias_ih, bias_hh) in enumerate(weights.cells):
            inputs, cell[layer] = torch.lstm_cell(
                inputs, (hidden[layer], cell[layer]), weight_ih, weight_hh, bias_ih, bias_hh
            )  # (B, H) each
            hidden[layer] = inputs
        # a_t = softmax(h_t W_a h_s + mask bias), c_t = a_t h_s, h~_t = tanh(W_c [c_t; h_t])   (Luong eqs. 5-8)
        attention = torch.softmax(torch.baddbmm(state.memory_bias, inputs[:, None], state.keys.mT), dim=-1)
        context = torch.bmm(attention, state.memory).squeeze(1)  # (B, H)
        state.input_feed = torch.mm(torch.cat([context, inputs], dim=-1), weights.output_proj).tanh_()  # (B, H)
        state.hidden, state.cell = tuple(hidden), tuple(cell)
        state.seen_tokens += 1
        return state.input_feed, attention

    def decode(self, input_ids: torch.LongTensor, state: LSTMDecoderState):
        """
        The decoder without autograd and dropout, from a state made that way (`state.step_weights` set): one `step`
        per token of `input_ids` (B, T), each multiplying B rows, on a copy of the state. Returns what `forward`
        returns.
        """
        new_state = LSTMDecoderState(
            state.hidden,
            state.cell,
            state.input_feed,
            state.memory,
            state.keys,
            state.memory_bias,
            state.seen_tokens,
            state.step_weights,
        )
        steps = [self.step(tokens, new_state) for tokens in input_ids.unbind(1)]  # T x ((B, H), (B, 1, S))
        if len(steps) == 1:
            attentional, attention = steps[0][0][:, None], steps[0][1]  # (B, 1, H), (B, 1, S)
        else:
            attentional = torch.stack([step[0] for step in steps], dim=1)  # (B, T, H)
            attention = torch.cat([step[1] for step in steps], dim=1)  # (B, T, S)
        return attentional, new_state, attention

    def forward(self, input_ids: torch.LongTensor, state: LSTMDecoderState):
        """
        Runs the decoder over `input_ids` (B, T) from `state`.

        Returns:
            attentional (B, T, H) vectors h~_t, the new state, and attention weights (B, T, S).
        """
        if state.step_weights is not None and not torch.is_grad_enabled() and not self.training:
            return self.decode(input_ids, state)
        drop = self.training and self.dropout.p > 0
        embeds = self.embed_tokens(input_ids)  # (B, T, E)
        if drop:
            embeds = self.dropout(embeds)
        hidden, cell, input_feed = state.hidden, state.cell, state.input_feed
        memory, keys, memory_bias = state.memory, state.keys, state.memory_bias
        # Input feeding: layer 0 reads [y_{t-1}; h~_{t-1}]. Under autograd (training), its projection of the
        # embeddings y, which does not depend on the recurrence, is one GEMM over all T steps instead of T thin ones
        # (and as many in the backward). Without autograd (generate(), scoring) every product of a step has B rows
        # whatever T is, so that a row's numbers do not depend on the lengths of the other targets in its batch
        # (one GEMM of B * T rows may round differently for another T): sharded Seq-KD equals one pass exactly.
        # The per-step inputs come from `unbind`, whose backward stacks the T gradients once; indexing [:, t] would
        # add T full-size (B, T, .) gradients.
        precompute = self.config.input_feeding and torch.is_grad_enabled()
        embed_gates = self.lstm.known_input_gates(embeds) if precompute else None  # (B, T, 4H)
        step_inputs = (embeds if embed_gates is None else embed_gates).unbind(1)  # T x (B, E) or T x (B, 4H)
        rest_weight = self.lstm.rest_weight(len(step_inputs)) if embed_gates is not None else None  # (4H, H)
        steps, step_weights = [], []
        for step_input in step_inputs:
            if embed_gates is not None:
                output, hidden, cell = self.lstm(
                    input_feed, hidden, cell, known_gates=step_input, rest_weight=rest_weight
                )  # (B, H)
            else:
                if self.config.input_feeding:
                    step_input = torch.cat([step_input, input_feed], dim=-1)  # (B, E + H)
                output, hidden, cell = self.lstm(step_input, hidden, cell)  # (B, H)
            attentional, weights = self.attention(output.unsqueeze(1), memory, keys, memory_bias)  # (B, 1, H)
            if drop:
                attentional = self.dropout(attentional)
            input_feed = attentional.squeeze(1)  # (B, H)
            steps.append(attentional)
            step_weights.append(weights)
        if len(steps) == 1:  # one decoding step
            attentional, weights = steps[0], step_weights[0]  # (B, 1, H), (B, 1, S)
        else:
            attentional = torch.cat(steps, dim=1)  # (B, T, H)
            weights = torch.cat(step_weights, dim=1)  # (B, T, S)
        new_state = LSTMDecoderState(
            hidden=hidden,
            cell=cell,
            input_feed=input_feed,
            memory=state.memory,
            keys=state.keys,
            memory_bias=state.memory_bias,
            seen_tokens=state.seen_tokens + input_ids.shape[1],
            step_weights=state.step_weights,
        )
        return attentional, new_state, weights


class LSTMSeq2SeqPreTrainedModel(PreTrainedModel):
    config_class = LSTMSeq2SeqConfig
    config: LSTMSeq2SeqConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    # The recurrent state cannot be cropped or rebuilt from a token prefix (no assisted decoding) and is not a
    # transformers `Cache`: generate() must not build a DynamicCache for it.
    _is_stateful = True

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        # A folder written by hf_seqkd.pruning.save_pruned keeps its weights sparsely (model.sparse.safetensors, no
        # model.safetensors): the one loader of pruned weights densifies them, so that a pruned model loads like any.
        return load_pruned(pretrained_model_name_or_path, super(), *model_args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        # Luong et al. (2015): every parameter uniform in [-0.1, 0.1].
        for name, param in module.named_parameters(recurse=False):
            init.uniform_(param, -self.config.init_range, self.config.init_range)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            init.zeros_(module.weight[module.padding_idx])


class LSTMSeq2SeqModel(LSTMSeq2SeqPreTrainedModel):
    """The encoder-decoder without the output softmax; `last_hidden_state` holds the attentional vectors h~."""

    def __init__(self, config: LSTMSeq2SeqConfig):
        super().__init__(config)
        self.encoder = LSTMSeq2SeqEncoder(config)
        self.decoder = LSTMSeq2SeqDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value):
        self.encoder.embed_tokens = value

    def get_encoder(self, modality=None):
        return self.encoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: LSTMEncoderOutput | tuple | None = None,
        cache: LSTMDecoderState | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: LSTMDecoderState | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): source token ids, right-padded.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 on tokens, 0 on
                padding; derived from `pad_token_id` when omitted.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`): decoder inputs; with
                `cache`, only the new tokens.
            encoder_outputs ([`LSTMEncoderOutput`], *optional*): reuse an encoding of the source.
            cache ([`LSTMDecoderState`], *optional*): continue decoding from this state.
            use_cache (`bool`, *optional*): return the decoder state (default: True).
            output_attentions (`bool`, *optional*): return the attention weights as `cross_attentions`.
            return_dict (`bool`, *optional*): `False` returns the tuple (last_hidden_state, decoder state or None,
                attention weights or None, encoder_last_hidden_state or None).
            past_key_values ([`LSTMDecoderState`], *optional*): the name of `cache` before transformers 5.24.
            kwargs: transformers' model kwargs; `output_hidden_states=True` is refused (no per-layer states).
        """
        _no_hidden_states(kwargs)
        state = _decoder_state_argument(cache, past_key_values)
        if decoder_input_ids is None:
            raise ValueError("`decoder_input_ids` (or `labels`) are needed: the decoder has no default input.")
        use_cache = True if use_cache is None else use_cache
        if state is None:
            if encoder_outputs is None:
                if input_ids is None:
                    raise ValueError("Pass `input_ids` (or `encoder_outputs`) for a new source batch.")
                if attention_mask is None:
                    attention_mask = input_ids.ne(self.config.pad_token_id).long()
                encoder_outputs = self.encoder(input_ids, attention_mask)
            elif isinstance(encoder_outputs, tuple):
                encoder_outputs = LSTMEncoderOutput(*encoder_outputs)
            memory = encoder_outputs.last_hidden_state
            if attention_mask is None:
                attention_mask = memory.new_ones(memory.shape[:2], dtype=torch.long)
            _check_ids("decoder_input_ids", decoder_input_ids, self.config.decoder_vocab_size)
            state = self.decoder.init_state(encoder_outputs, attention_mask)
        attentional, state, weights = self.decoder(decoder_input_ids, state)
        if return_dict is False:  # the tuple form, as transformers models give it: no output object to build
            encoder_last = encoder_outputs.last_hidden_state if encoder_outputs is not None else None
            return attentional, state if use_cache else None, weights if output_attentions else None, encoder_last
        return Seq2SeqModelOutput(
            last_hidden_state=attentional,  # (B, T, H)
            **{DECODER_STATE_FIELD: state if use_cache else None},
            cross_attentions=(weights,) if output_attentions else None,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state if encoder_outputs is not None else None,
        )


def decoder_state(outputs: ModelOutput) -> LSTMDecoderState | None:
    """The decoder state in a model output, whichever name this transformers release gives it."""
    return outputs.get(DECODER_STATE_FIELD)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: start token, then the labels but the last, with -100 replaced by padding."""
    decoder_input_ids = labels.new_empty(labels.shape)
    decoder_input_ids[:, 1:] = labels[:, :-1]
    decoder_input_ids[:, 0] = decoder_start_token_id
    return decoder_input_ids.masked_fill(decoder_input_ids == -100, pad_token_id)


class LSTMSeq2SeqForConditionalGeneration(LSTMSeq2SeqPreTrainedModel, GenerationMixin):
    """
    The LSTM encoder-decoder with its output softmax: a transformers seq2seq LM. `generate()` works as for any
    transformers model (greedy, beam search, sampling), one decoder step per token.
    """

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: LSTMSeq2SeqConfig):
        super().__init__(config)
        self.model = LSTMSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.decoder_vocab_size)  # W_s
        # Labels and logits are aligned (the decoder reads the labels shifted right): no shift in the loss.
        self.loss_type = "ForMaskedLM"
        self.transposed_copies = TransposedCopies()
        self.post_init()
        # The config's default `max_length` (20) is far too short for translation.
        self.generation_config.max_length = config.max_target_length

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def get_encoder(self, modality=None):
        return self.model.encoder

    # A search over at most this many rows (batch x beams) runs on one CPU thread; see `generate`.
    single_thread_search_rows = 8

    def generate(self, inputs: torch.Tensor | None = None, *args, **kwargs):
        """
        GenerationMixin.generate, unchanged, except that on CPU a search over a few rows (batch size x beams at most
        `single_thread_search_rows`, e.g. one sentence with beam 5) runs on one thread, and the thread count is
        restored afterwards. Each step is then a handful of matrix-vector products too small to split: measured on
        2-core CPUs (README, Speed), two threads decode one sentence 13% (busy machine) to 2x (idle) slower than one.
        `torch.set_num_threads` is process-wide, so torch work on other Python threads sees one thread meanwhile.
        """
        threads = torch.get_num_threads()
        if (
            threads == 1
            or self.device.type != "cpu"
            or self._search_rows(inputs, kwargs) > self.single_thread_search_rows
        ):
            return super().generate(inputs, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return super().generate(inputs, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    def _search_rows(self, inputs, kwargs) -> int:
        """Rows that each search step computes: batch size x max(beams, sequences returned); large when unknown."""
        source = inputs if inputs is not None else kwargs.get("input_ids")
        if source is None and kwargs.get("encoder_outputs") is not None:
            source = kwargs["encoder_outputs"][0]
        if not torch.is_tensor(source):
            return self.single_thread_search_rows + 1
        config = kwargs.get("generation_config") or self.generation_config
        beams = kwargs.get("num_beams") or config.num_beams or 1
        sequences = kwargs.get("num_return_sequences") or config.num_return_sequences or 1
        return source.shape[0] * max(beams, sequences)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: LSTMEncoderOutput | tuple | None = None,
        cache: LSTMDecoderState | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        past_key_values: LSTMDecoderState | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): source token ids, right-padded.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 on tokens, 0 on
                padding; derived from `pad_token_id` when omitted.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*): decoder
                inputs; built from `labels` (shifted right after `decoder_start_token_id`) when omitted.
            decoder_attention_mask (`torch.Tensor`, *optional*): accepted for API compatibility and unused: the
                decoder is causal and target padding only follows the tokens, so it never changes a real position.
            encoder_outputs ([`LSTMEncoderOutput`], *optional*): reuse an encoding of the source.
            cache ([`LSTMDecoderState`], *optional*): continue decoding from this state.
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*): target ids; -100 is
                ignored by the loss.
            use_cache (`bool`, *optional*): return the decoder state (default: True).
            output_attentions (`bool`, *optional*): return the attention weights as `cross_attentions`.
            past_key_values ([`LSTMDecoderState`], *optional*): the name of `cache` before transformers 5.24.
            kwargs: transformers' model kwargs: `num_items_in_batch` (label tokens in the whole accumulated,
                all-process batch: the loss is then the token sum divided by it, so gradient accumulation is exact),
                `return_dict=False` (the tuple form); `output_hidden_states=True` is refused (no per-layer states).

        Returns:
            [`~transformers.modeling_outputs.Seq2SeqLMOutput`] with `logits` (B, T, V), `loss` when labels are given
            (mean token cross-entropy, transformers' `ForMaskedLM` loss: the labels are aligned with the logits), and
            the decoder state as `cache` (`past_key_values` before transformers 5.24; `decoder_state(output)` reads
            it under either name).
        """
        _no_hidden_states(kwargs)
        state = _decoder_state_argument(cache, past_key_values)
        if state is not None and state.step_weights is not None and labels is None and decoder_input_ids is not None:
            if not torch.is_grad_enabled() and not self.training:
                return self._decoding_step(decoder_input_ids, state, encoder_outputs, use_cache, output_attentions)
        if labels is not None:
            _check_ids("labels", labels, self.config.decoder_vocab_size, allow_ignore_index=True)
            if decoder_input_ids is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        attentional, state, weights, encoder_last_hidden_state = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            cache=state,
            use_cache=use_cache,
            output_attentions=output_attentions,
            return_dict=False,
        )
        logits = self.lm_head(attentional)  # (B, T, V), one GEMM for all steps

        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.decoder_vocab_size, **kwargs)

        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **{DECODER_STATE_FIELD: state},
            cross_attentions=(weights,) if weights is not None else None,
            encoder_last_hidden_state=encoder_last_hidden_state,
        )

    def _decoding_step(self, decoder_input_ids, state, encoder_outputs, use_cache, output_attentions):
        """
        `forward` for a step of generate() (a state made without autograd, no labels): the decoder's decoding steps
        and the output layer, with no module dispatch, and the output object built cheaply. Every check that does not
        depend on the step was made when the state was.
        """
        attentional, state, weights = self.model.decoder.decode(decoder_input_ids, state)
        encoder_last = getattr(encoder_outputs, "last_hidden_state", None)
        if isinstance(encoder_outputs, tuple):
            encoder_last = encoder_outputs[0]
        return _decoding_step_output(
            self._step_logits(attentional, state.step_weights.transposed),  # (B, T, V)
            state if use_cache is not False else None,
            (weights,) if output_attentions else None,
            encoder_last,
        )

    def _step_logits(self, attentional: torch.Tensor, transposed: bool) -> torch.Tensor:
        """
        W_s h~ + b (B, T, V) of a decoding step. Several tokens (teacher forcing) keep the one product of B * T rows
        with W_s as stored: with a transposed copy there, Seq-KD data made by two processes no longer equalled one
        process's.
        """
        if attentional.shape[1] != 1:
            return self.lm_head(attentional)
        return self._step_output_layer(transposed)(attentional.squeeze(1)).unsqueeze(1)  # (B, 1, V)

    def _step_output_layer(self, transposed: bool):
        """
        The output layer of a one-token decoding step, as a function of h~ (B, H) -> logits (B, V). Where the
        decoder's step weights are transposed copies (a search of a few rows, decided once per source batch in
        `init_state`), it multiplies by a transposed copy of W_s too (`TransposedCopies`).
        """
        head = self.lm_head
        if not transposed or type(head) is not nn.Linear or head.bias is None:
            return head
        weight, bias = self.transposed_copies("lm_head.weight", head.weight), head.bias  # (H, V), (V,)
        return lambda attentional: torch.addmm(bias, attentional, weight)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        cache: LSTMDecoderState | None = None,
        past_key_values: LSTMDecoderState | None = None,
        next_sequence_length: int | None = None,
        is_first_iteration: bool | None = None,
        **kwargs,
    ) -> dict:
        """
        The inputs of one `generate()` step: the target tokens the decoder state has not consumed yet, the state, and
        every other keyword (encoder outputs, attention mask, `use_cache`, ...) passed on unchanged.

        GenerationMixin's generic version does work this model never needs on every step: it inspects `forward`'s
        signature (for remote-code models, which this one is once registered for the Auto classes), looks up the
        model's device by walking its modules, and builds 4D masks for attention caches. Slicing by the state's own
        token count (`seen_tokens`) gives the same inputs as the generic slicing on every transformers release,
        whether it passes `next_sequence_length` (5.24) or `cache_position` (older); the state arrives as `cache` or
        `past_key_values`.
        """
        state = _decoder_state_argument(cache, past_key_values)
        kwargs.pop("labels", None)
        decoder_input_ids = input_ids if state is None else input_ids[:, state.seen_tokens :]  # (B, new tokens)
        return {"decoder_input_ids": decoder_input_ids, "cache": state, **kwargs}

    # generate()'s search loops.
    #
    # GenerationMixin's `_sample` (greedy search and sampling) and `_beam_search` serve any model and any cache, and
    # their bookkeeping costs more than this model's whole decoding step in a small search (issue 17: one sentence
    # with beam 5, 2x128, about 420 us a step for the search alone against about 250 for the model). generate()
    # looks both up on the model's class, so this model runs its own where a search asks for nothing but token ids
    # (`_direct_search_limits` says when): the same first forward, then the decoder's step called directly, the
    # same arithmetic and selection rules, hence the same tokens; the tests compare the two on every search option.
    # Anything else (scores or attentions returned, a streamer, custom stopping criteria, hooks on the model or a
    # `forward` replaced on it, a decoder with replaced parts) goes to GenerationMixin's loops unchanged.

    _direct_search_model_kwargs = frozenset(
        {"attention_mask", "encoder_outputs", "use_cache", "output_attentions", "output_hidden_states"}
    )

    def _direct_search_limits(self, stopping_criteria, generation_config, synced_gpus, streamer, model_kwargs):
        """
        (max_length, EOS ids or None) when this model can run the search itself; None to use GenerationMixin's.
        The stopping criteria must be transformers' own max-length and EOS criteria, which generate() builds from
        `max_length` / `max_new_tokens` and `eos_token_id`.
        """
        if synced_gpus or streamer is not None or generation_config.return_dict_in_generate or self.training:
            return None
        if not model_kwargs.keys() <= self._direct_search_model_kwargs or model_kwargs.get("use_cache") is False:
            return None
        if model_kwargs.get("output_attentions") or model_kwargs.get("output_hidden_states"):
            return None
        if self._forward_hooks or self._forward_pre_hooks or nn.modules.module._global_forward_hooks:
            return None  # generate() calls the model, hooks included, on every step
        if "forward" in self.__dict__:
            # `forward` replaced on this model object, e.g. by Accelerate's mixed precision (`prepare` wraps it in
            # autocast: the `Trainer(bf16=True)` evaluations): every step must go through it, or the first step's
            # bfloat16 state meets float32 steps.
            return None
        if nn.modules.module._global_forward_pre_hooks or self.model.decoder.decoding_step_weights(False) is None:
            return None
        max_lengths, eos_ids = [], []
        for criterion in stopping_criteria:
            if type(criterion) is MaxLengthCriteria:
                max_lengths.append(criterion.max_length)
            elif type(criterion) is EosTokenCriteria:
                eos_ids.append(criterion.eos_token_id.reshape(-1))
            else:
                return None
        if not max_lengths:
            return None
        return min(max_lengths), torch.cat(eos_ids) if eos_ids else None

    def _first_decoding_step(self, input_ids: torch.LongTensor, model_kwargs: dict):
        """The prompt's step through `forward`, as generate() makes it: next-token logits (B, V) and the state."""
        outputs = self(**self.prepare_inputs_for_generation(input_ids, **model_kwargs), return_dict=True)
        return outputs.logits[:, -1], decoder_state(outputs)

    def _next_decoding_step(self, tokens: torch.LongTensor, state: LSTMDecoderState, output_layer):
        """
        One token per row (B,) through the decoder's `step` (the state advances in place) and `output_layer` (from
        `_step_output_layer`, taken once per search): logits (B, V) and the state.
        """
        attentional, _ = self.model.decoder.step(tokens.to(state.memory.device), state)  # (B, H)
        return output_layer(attentional), state

    def _sample(
        self,
        input_ids,
        logits_processor,
        stopping_criteria,
        generation_config,
        synced_gpus=False,
        streamer=None,
        **model_kwargs,
    ):
        """Greedy search or sampling: GenerationMixin's `_sample` in this model's own loop where it can (see above)."""
        limits = self._direct_search_limits(stopping_criteria, generation_config, synced_gpus, streamer, model_kwargs)
        if limits is None:
            return super()._sample(
                input_ids,
                logits_processor=logits_processor,
                stopping_criteria=stopping_criteria,
                generation_config=generation_config,
                synced_gpus=synced_gpus,
                streamer=streamer,
                **model_kwargs,
            )
        return self._direct_sample(input_ids, logits_processor, generation_config, limits, model_kwargs)

    @_untracked_search
    def _direct_sample(self, input_ids, logits_processor, generation_config, limits, model_kwargs):
        """The loop of `_sample`; returns the sequences (B, t)."""
        max_length, eos_ids = limits
        device = input_ids.device
        eos_ids = eos_ids.to(device) if eos_ids is not None else None
        pad_token_id = generation_config._pad_token_tensor
        pad_token_id = pad_token_id.to(device) if pad_token_id is not None else None
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=device)  # (B,)
        logits, state = self._first_decoding_step(input_ids, model_kwargs)
        output_layer = self._step_output_layer(state.step_weights.transposed)
        float_logits = None  # (B, V) float32, one buffer for every step (see `_direct_beam_search`)
        while True:
            if float_logits is None:
                float_logits = logits.to(copy=True, dtype=torch.float32, device=device)
            else:
                float_logits.copy_(logits)
            scores = logits_processor(input_ids, float_logits)  # (B, V)
            if generation_config.do_sample:
                next_tokens = torch.multinomial(nn.functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = torch.argmax(scores, dim=-1)  # (B,)
            if eos_ids is not None:  # a finished row continues with padding
                next_tokens = next_tokens * unfinished + pad_token_id * (1 - unfinished)
                unfinished = unfinished & ~torch.isin(next_tokens, eos_ids)
            input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)  # (B, t + 1)
            if input_ids.shape[1] >= max_length or (eos_ids is not None and unfinished.max() == 0):
                return input_ids
            logits, state = self._next_decoding_step(next_tokens, state, output_layer)

    def _beam_search(
        self, input_ids, logits_processor, stopping_criteria, generation_config, synced_gpus=False, **model_kwargs
    ):
        """
        Beam search: GenerationMixin's `_beam_search` in this model's own loop where it can (see above), with its
        rules. Each step ranks the 2K best continuations (more with several EOS ids); those among the first K that end
        (EOS or max_length) compete for the K finished slots with score sum(log p) / generated_length **
        length_penalty; the K best others continue. The search stops as `early_stopping` says: when every sentence
        has K finished hypotheses (True), when no running beam can still beat a finished one by transformers'
        heuristic (False: at its current length; "never": at max_length when length_penalty > 0), or at max_length.

        Every score tensor is transformers' own, built by the same operations in the same order (the -1e9 that push
        candidates out included), so that the same hypotheses win even where scores tie, which in bfloat16 happens
        often (equal bfloat16 logits): `torch.topk` breaks ties by the layout of its input. What is left out is most of
        the bookkeeping of token sequences: transformers builds every candidate's whole sequence on every step; here
        candidates' sequences are built only on steps where one enters a finished slot, and -1e9 terms that are all
        zeros (early_stopping not True; every sentence still able to improve) are not added.
        """
        limits = self._direct_search_limits(stopping_criteria, generation_config, synced_gpus, None, model_kwargs)
        eos_ids = generation_config._eos_token_tensor
        num_eos = eos_ids.shape[0] if eos_ids is not None else 0
        if (
            limits is None
            or generation_config.do_sample
            or generation_config.low_memory
            or (limits[1] is not None and limits[1].numel() > num_eos)
        ):
            return super()._beam_search(
                input_ids,
                logits_processor=logits_processor,
                stopping_criteria=stopping_criteria,
                generation_config=generation_config,
                synced_gpus=synced_gpus,
                **model_kwargs,
            )
        return self._direct_beam_search(input_ids, logits_processor, generation_config, limits, model_kwargs)

    @_untracked_search
    def _direct_beam_search(self, input_ids, logits_processor, generation_config, limits, model_kwargs):
        """The loop of `_beam_search`; returns the K best finished sequences (B * num_return_sequences, t)."""
        eos_ids = generation_config._eos_token_tensor
        num_eos = eos_ids.shape[0] if eos_ids is not None else 0
        max_length, stop_ids = limits
        stop_ids = stop_ids.to(input_ids.device) if stop_ids is not None else None
        num_beams, length_penalty = generation_config.num_beams, generation_config.length_penalty
        early_stopping = generation_config.early_stopping
        flat_size, prompt_length = input_ids.shape
        batch_size, device = flat_size // num_beams, input_ids.device
        # With E EOS ids, (1 + E) K candidates leave at least K that do not end.
        keep = max(2, 1 + num_eos) * num_beams
        may_finish = torch.arange(keep, device=device) < num_beams  # (2K,) only the first K can finish
        # After a hypothesis ends: transformers' filler, the padding id (the first EOS id where padding is id 0).
        filler = int((generation_config._pad_token_tensor or eos_ids[0]) if eos_ids is not None else -1)
        beam_offset = torch.arange(batch_size, device=device)[:, None] * num_beams  # (B, 1)

        running = input_ids.view(batch_size, num_beams, prompt_length)  # (B, K, t) tokens of the running beams
        running_scores = torch.zeros(batch_size, num_beams, device=device)  # (B, K) sum of log-probs
        running_scores[:, 1:] = -1e9  # the K copies of the prompt: only the first one expands
        finished = running.new_full((batch_size, num_beams, max_length), filler)  # (B, K, max_length), best first
        finished[:, :, :prompt_length] = running  # an empty slot holds the prompt
        finished_scores = torch.full((batch_size, num_beams), -1e9, device=device)  # (B, K)
        # Per slot, 2 x the tokens generated + whether it is taken (transformers' `is_sent_finished`), in one tensor
        # so that one gather moves both.
        slot_state = torch.zeros(batch_size, num_beams, dtype=torch.long, device=device)
        is_finished = slot_state.bool()  # (B, K)
        improvable = torch.ones(batch_size, 1, dtype=torch.bool, device=device)  # a running beam may still win
        all_improvable = True  # improvable.all(), known from the last step's stopping check

        logits, state = self._first_decoding_step(input_ids, model_kwargs)
        output_layer = self._step_output_layer(state.step_weights.transposed)
        cur_len = prompt_length
        # The step's (B * K, V) float32 scores go into the same two buffers on every step. Fresh tensors this large
        # come from the OS page by page each time (glibc maps and unmaps blocks over its threshold): at batch 64 the
        # page faults cost more than the log-softmax itself. Same operations, same values.
        float_logits = log_softmax = None
        while True:
            if logits.dtype == torch.float32 and logits.device == device:
                float_logits = logits
            elif float_logits is None:
                float_logits = logits.to(dtype=torch.float32, device=device)
            else:
                float_logits.copy_(logits)
            log_softmax = torch.log_softmax(float_logits, dim=-1, out=log_softmax)  # (B * K, V)
            log_probs = log_softmax
            if logits_processor:
                log_probs = logits_processor(running.reshape(flat_size, cur_len), log_probs)
            vocab_size = log_probs.shape[-1]
            if log_probs is log_softmax:  # the buffer, contiguous and ours: the sum goes into it
                log_probs = log_probs.view(batch_size, num_beams, vocab_size).add_(running_scores[:, :, None])
            else:  # a processor's own tensor, in whatever layout it has
                log_probs = log_probs.view(batch_size, num_beams, vocab_size) + running_scores[:, :, None]
            log_probs = log_probs.view(batch_size, num_beams * vocab_size)
            top_scores, top_indices = torch.topk(log_probs, k=keep)  # (B, 2K), best first
            source_beams, tokens = top_indices // vocab_size, top_indices % vocab_size  # (B, 2K) each
            last_step = cur_len + 1 >= max_length
            if last_step:  # the only step where every candidate ends (E EOS ids end at most E x K of the (1 + E) K)
                ends = torch.ones_like(tokens, dtype=torch.bool)
            elif stop_ids is not None:
                ends = torch.isin(tokens, stop_ids)  # (B, 2K)
            else:
                ends = torch.zeros_like(tokens, dtype=torch.bool)

            # The K best candidates that do not end continue.
            continuing_scores = top_scores + ends.to(torch.float32) * -1.0e9  # (B, 2K)
            next_beams = torch.topk(continuing_scores, k=num_beams)[1]  # (B, K)
            next_running_scores = torch.take_along_dim(continuing_scores, next_beams, dim=1)
            parents = torch.take_along_dim(source_beams, next_beams, dim=1)
            next_tokens = torch.take_along_dim(tokens, next_beams, dim=1)

            # Those among the first K that end compete with the finished hypotheses for the K slots; a sentence whose
            # slots are all taken under early_stopping=True, or that cannot improve, takes none.
            just_finished = ends & may_finish  # (B, 2K)
            # (The first two -1e9 terms are all zeros unless early_stopping=True / some sentence cannot improve, and
            # adding zeros changes no score: those steps skip them.)
            ending_scores = top_scores / ((cur_len + 1 - prompt_length) ** length_penalty)
            if early_stopping is True:
                slots_full = torch.all(is_finished, dim=-1, keepdim=True)  # (B, 1)
                ending_scores += slots_full.to(torch.float32) * -1.0e9
            if not all_improvable:
                ending_scores += (~improvable).to(torch.float32) * -1.0e9
            ending_scores += (~just_finished) * -1.0e9
            merged_scores = torch.cat([finished_scores, ending_scores], dim=1)  # (B, 3K)
            best = torch.topk(merged_scores, k=num_beams)[1]  # (B, K)
            finished_scores = torch.take_along_dim(merged_scores, best, dim=1)
            ending_state = just_finished + 2 * (cur_len + 1 - prompt_length)  # (B, 2K)
            slot_state = torch.take_along_dim(torch.cat([slot_state, ending_state], dim=1), best, dim=1)
            is_finished = (slot_state & 1).bool()
            if bool((best >= num_beams).any()):  # a candidate took a slot: gather the sequences
                candidates = torch.cat(
                    [
                        torch.take_along_dim(running, source_beams[:, :, None], dim=1),
                        tokens[:, :, None],
                        running.new_full((batch_size, keep, max_length - cur_len - 1), filler),
                    ],
                    dim=-1,
                )  # (B, 2K, max_length)
                finished = torch.cat([finished, candidates], dim=1)
            finished = torch.take_along_dim(finished, best[:, :, None], dim=1)  # (B, K, max_length)

            running_scores = next_running_scores
            running = torch.cat(
                [torch.take_along_dim(running, parents[:, :, None], dim=1), next_tokens[:, :, None]], dim=-1
            )  # (B, K, t + 1)
            cur_len += 1
            # transformers' stopping heuristic: the best running beam, at its current length (at max_length under
            # early_stopping="never" with length_penalty > 0), against the worst finished hypothesis.
            if early_stopping == "never" and length_penalty > 0.0:
                best_length = max_length - prompt_length
            else:
                best_length = cur_len - prompt_length
            best_running = running_scores[:, :1] / (best_length**length_penalty)  # (B, 1)
            worst_finished = torch.where(is_finished, torch.min(finished_scores, dim=1, keepdim=True)[0], -1.0e9)
            improvable = improvable & torch.any(best_running > worst_finished, dim=-1, keepdim=True)  # (B, 1)
            num_improvable = int(improvable.sum())
            all_improvable = num_improvable == batch_size
            all_full = early_stopping is True and bool(torch.all(is_finished))
            if all_full or num_improvable == 0 or last_step:
                break
            state.reorder_cache((parents + beam_offset).view(-1))
            logits, state = self._next_decoding_step(next_tokens.reshape(-1), state, output_layer)

        returned = generation_config.num_return_sequences
        length = prompt_length + int(slot_state[:, :returned].max()) // 2
        return finished[:, :returned].reshape(batch_size * returned, max_length)[:, :length]


__all__ = [
    "DECODER_STATE_FIELD",
    "LSTMDecoderState",
    "LSTMEncoderOutput",
    "LSTMSeq2SeqForConditionalGeneration",
    "LSTMSeq2SeqModel",
    "LSTMSeq2SeqPreTrainedModel",
    "decoder_state",
    "shift_tokens_right",
]

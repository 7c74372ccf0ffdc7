"""Configuration of the LSTM encoder-decoder with Luong global attention (Luong et al., 2015)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

ATTENTION_SCORES = ("dot", "general", "concat")
DECODER_INITS = ("encoder_final", "zeros")


@strict
class LSTMSeq2SeqConfig(PreTrainedConfig):
    r"""
    Configuration of [`LSTMSeq2SeqForConditionalGeneration`]: a stacked LSTM encoder, a stacked LSTM decoder with
    input feeding and global attention, the model of Luong et al. (2015) used by Kim & Rush (2016).

    Args:
        vocab_size (`int`, *optional*, defaults to 8000):
            Size of the source vocabulary, and of the target vocabulary too unless `target_vocab_size` is given (one
            joint vocabulary is the default).
        target_vocab_size (`int`, *optional*):
            Size of a separate target vocabulary. `None` means the joint vocabulary of `vocab_size` tokens.
        embedding_size (`int`, *optional*, defaults to 500):
            Size of the source and target word embeddings.
        hidden_size (`int`, *optional*, defaults to 500):
            Size of the LSTM states, of the attention and of the attentional vector h~. With a bidirectional encoder
            each direction has `hidden_size // 2` units so that their concatenation has `hidden_size`.
        encoder_layers (`int`, *optional*, defaults to 2):
            Number of stacked LSTM layers in the encoder.
        decoder_layers (`int`, *optional*, defaults to 2):
            Number of stacked LSTM layers in the decoder.
        bidirectional_encoder (`bool`, *optional*, defaults to `False`):
            Whether the encoder is a bidirectional LSTM. The final forward and backward states of each encoder layer
            are then concatenated to initialise the decoder layer of the same depth.
        decoder_init (`str`, *optional*, defaults to `"encoder_final"`):
            `"encoder_final"`: each decoder layer starts from the final (h, c) of the encoder layer of the same depth
            (needs `encoder_layers == decoder_layers`); `"zeros"`: the decoder starts from zero states.
        dropout (`float`, *optional*, defaults to 0.3):
            Dropout on the embeddings, between LSTM layers and on the attentional vector h~.
        attention_score (`str`, *optional*, defaults to `"general"`):
            Luong's score function: `"dot"` (h_t^T h_s), `"general"` (h_t^T W_a h_s) or `"concat"`
            (v_a^T tanh(W_a [h_t; h_s])).
        input_feeding (`bool`, *optional*, defaults to `True`):
            Whether the previous attentional vector h~_{t-1} is concatenated to the input embedding at step t.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Whether the decoder input embeddings and the output projection share one matrix (needs
            `embedding_size == hidden_size`).
        init_range (`float`, *optional*, defaults to 0.1):
            Parameters are initialised uniformly in [-init_range, init_range], as Luong et al. did.
        max_source_length (`int`, *optional*, defaults to 256):
            Longest source sequence (in tokens) the encoder accepts; longer ones raise an error. Truncate when
            tokenizing (`truncation=True, max_length=...`).
        max_target_length (`int`, *optional*, defaults to 256):
            Default `max_length` of generation.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding token id, ignored by the encoder and never attended to.
        bos_token_id (`int`, *optional*, defaults to 1):
            Beginning-of-sequence token id.
        eos_token_id (`int`, *optional*, defaults to 2):
            End-of-sequence token id.
        decoder_start_token_id (`int`, *optional*):
            First decoder input; defaults to `bos_token_id`.

    Example:

    ```python
    >>> from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration
    >>> config = LSTMSeq2SeqConfig.student_2x500(vocab_size=8000)
    >>> model = LSTMSeq2SeqForConditionalGeneration(config)
    ```
    """

    model_type = "lstm_seq2seq"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the decoder state under either name
    attribute_map = {"num_hidden_layers": "decoder_layers"}

    vocab_size: int = 8000
    target_vocab_size: int | None = None
    embedding_size: int = 500
    hidden_size: int = 500
    encoder_layers: int = 2
    decoder_layers: int = 2
    bidirectional_encoder: bool = False
    decoder_init: str = "encoder_final"
    dropout: float | int = 0.3
    attention_score: str = "general"
    input_feeding: bool = True
    tie_word_embeddings: bool = False
    init_range: float | int = 0.1
    max_source_length: int = 256
    max_target_length: int = 256
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int | None = None
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id
        super().__post_init__(**kwargs)
        # The class validators below also run when the config is saved or `validate()`d (where `@strict` wraps their
        # errors); run here, a bad value fails at construction with the plain ValueError that names it.
        self.validate_architecture()
        self.validate_token_ids()

    @property
    def decoder_vocab_size(self) -> int:
        """Size of the target vocabulary (the output softmax)."""
        return self.vocab_size if self.target_vocab_size is None else self.target_vocab_size

    def validate_architecture(self):
        """Sizes, dropout, initialisation range, score function, decoder start and tying: `@strict` class validator."""
        super().validate_architecture()

        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")

        for name in ("vocab_size", "embedding_size", "hidden_size", "encoder_layers", "decoder_layers"):
            positive_int(name)
        for name in ("max_source_length", "max_target_length"):
            positive_int(name)
        if self.target_vocab_size is not None:
            positive_int("target_vocab_size")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout!r}.")
        if self.init_range <= 0:
            raise ValueError(f"`init_range` must be > 0, got {self.init_range!r}.")
        if self.attention_score not in ATTENTION_SCORES:
            raise ValueError(f"`attention_score` must be one of {ATTENTION_SCORES}, got {self.attention_score!r}.")
        if self.decoder_init not in DECODER_INITS:
            raise ValueError(f"`decoder_init` must be one of {DECODER_INITS}, got {self.decoder_init!r}.")
        if self.bidirectional_encoder and self.hidden_size % 2:
            raise ValueError(
                f"A bidirectional encoder splits `hidden_size` between its two directions, so it must be even; "
                f"got hidden_size={self.hidden_size}."
            )
        if self.decoder_init == "encoder_final" and self.encoder_layers != self.decoder_layers:
            raise ValueError(
                f"decoder_init='encoder_final' starts each decoder layer from the encoder layer of the same depth, so "
                f"encoder_layers ({self.encoder_layers}) must equal decoder_layers ({self.decoder_layers}); "
                f"use decoder_init='zeros' for different depths."
            )
        if self.tie_word_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                f"tie_word_embeddings=True shares the decoder embeddings with the output projection, which needs "
                f"embedding_size == hidden_size; got {self.embedding_size} and {self.hidden_size}."
            )

    def validate_token_ids(self):
        """
        The special ids are ids of the vocabularies (an error here, where transformers' check only warns): the pad id
        occurs on both sides, the others are target tokens. `@strict` class validator.
        """
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            limit = (
                min(self.vocab_size, self.decoder_vocab_size) if name == "pad_token_id" else self.decoder_vocab_size
            )
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
                raise ValueError(f"`{name}` must be a token id in [0, {limit}), got {value!r}.")

    # Presets for the sizes of Kim & Rush (2016): a 4x1000 teacher and 2x500 / 2x300 students.
    @classmethod
    def teacher_4x1000(cls, **kwargs) -> "LSTMSeq2SeqConfig":
        """The paper's teacher: 4 layers of 1000 units."""
        return cls(**{"embedding_size": 1000, "hidden_size": 1000, "encoder_layers": 4, "decoder_layers": 4, **kwargs})

    @classmethod
    def student_2x500(cls, **kwargs) -> "LSTMSeq2SeqConfig":
        """The paper's larger student: 2 layers of 500 units."""
        return cls(**{"embedding_size": 500, "hidden_size": 500, "encoder_layers": 2, "decoder_layers": 2, **kwargs})

    @classmethod
    def student_2x300(cls, **kwargs) -> "LSTMSeq2SeqConfig":
        """The paper's smaller student: 2 layers of 300 units."""
        return cls(**{"embedding_size": 300, "hidden_size": 300, "encoder_layers": 2, "decoder_layers": 2, **kwargs})


PRESETS = {
    "teacher_4x1000": LSTMSeq2SeqConfig.teacher_4x1000,
    "student_2x500": LSTMSeq2SeqConfig.student_2x500,
    "student_2x300": LSTMSeq2SeqConfig.student_2x300,
}

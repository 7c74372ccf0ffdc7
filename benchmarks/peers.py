"""OpenNMT-py 3.5.1 on the protocol of bench_speed.py, in the same process, so that both toolkits share one run.

OpenNMT-py is optional: `load_opennmt()` returns None when it is not importable. Its package imports every data
transform at import time, and a few of those need libraries decoding never touches (spaCy, rapidfuzz, fastText,
CTranslate2); when one of those is missing, an empty stand-in module is registered for it, so that a minimal install
(`pip install --no-deps OpenNMT-py==3.5.1 pyonmttok configargparse`, e.g. in a venv made with
`--system-site-packages`) is enough to measure it.
"""

import importlib
import sys
import types
import warnings

import torch

# Libraries imported by OpenNMT-py's data transforms only (terminology, fuzzy matching, language id, ct2 export).
_TRANSFORM_ONLY_MODULES = ("spacy", "rapidfuzz", "fasttext", "ctranslate2", "ahocorasick")


def load_opennmt():
    """The `onmt` package, or None when OpenNMT-py is not installed."""
    # alpha = 0 (no length penalty, as in hf_seqkd's beam 5 here) is what this protocol asks for.
    warnings.filterwarnings("ignore", message="Using length penalty with alpha==0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation warnings of modules decoding does not use
        return _import_opennmt()


def _import_opennmt():
    try:
        importlib.import_module("pyonmttok")
        importlib.import_module("onmt.opts")
    except ModuleNotFoundError as error:
        if error.name not in _TRANSFORM_ONLY_MODULES and not str(error.name).startswith("onmt."):
            return None
        for name in _TRANSFORM_ONLY_MODULES:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                stub = types.ModuleType(name)
                stub.fuzz = stub.process = None  # `from rapidfuzz import fuzz, process`
                sys.modules[name] = stub
        for name in [name for name in sys.modules if name == "onmt" or name.startswith("onmt.")]:
            del sys.modules[name]  # half-imported
        try:
            importlib.import_module("onmt.opts")
        except ModuleNotFoundError:
            return None
    import onmt.model_builder  # noqa: F401
    import onmt.translate.translator  # noqa: F401

    return sys.modules["onmt"]


class OpenNMTPeer:
    """An OpenNMT-py RNN model of the protocol's shape (Luong general attention, input feeding, E = H, dropout 0)."""

    name = "OpenNMT-py"

    def __init__(self, onmt, hidden: int, layers: int, vocab: int, seed: int = 0):
        import pyonmttok
        from onmt.constants import DefaultTokens
        from onmt.model_builder import build_base_model
        from onmt.utils.parse import ArgumentParser

        parser = ArgumentParser()
        onmt.opts.model_opts(parser)
        onmt.opts._add_train_general_opts(parser)
        # fmt: off
        opt = parser.parse_known_args([
            "-data", "unused", "-encoder_type", "rnn", "-decoder_type", "rnn", "-rnn_type", "LSTM",
            "-enc_layers", str(layers), "-dec_layers", str(layers), "-hidden_size", str(hidden),
            "-word_vec_size", str(hidden), "-global_attention", "general", "-input_feed", "1",
            "-dropout", "0", "-attention_dropout", "0", "-model_dtype", "fp32",
        ])[0]
        # fmt: on
        ArgumentParser.update_model_opts(opt)
        ArgumentParser.validate_model_opts(opt)
        specials = [DefaultTokens.UNK, DefaultTokens.PAD, DefaultTokens.BOS, DefaultTokens.EOS]
        vocabulary = pyonmttok.build_vocab_from_tokens(
            [f"w{i}" for i in range(vocab - len(specials))], special_tokens=specials
        )
        self.vocabs = {
            "src": vocabulary,
            "tgt": vocabulary,
            "decoder_start_token": DefaultTokens.BOS,
            "data_task": "seq2seq",
        }
        self.bos = vocabulary.lookup_token(DefaultTokens.BOS)
        torch.manual_seed(seed)
        self.model = build_base_model(opt, self.vocabs).eval()
        self.translators = {}

    def _translator(self, num_beams: int, length: int):
        from onmt.translate import GNMTGlobalScorer
        from onmt.translate.translator import Translator

        key = (num_beams, length)
        if key not in self.translators:
            scorer = GNMTGlobalScorer(alpha=0.0, beta=0.0, length_penalty="none", coverage_penalty="none")
            # beam_size 1 is OpenNMT-py's GreedySearch (argmax), not a one-beam BeamSearch.
            self.translators[key] = Translator(
                self.model, self.vocabs, gpu=-1, n_best=1, min_length=length, max_length=length,
                beam_size=num_beams, global_scorer=scorer, report_score=False,
            )  # fmt: skip
        return self.translators[key]

    def translate(self, input_ids: torch.Tensor, num_beams: int, length: int) -> int:
        """Translates a batch of source ids (B, S) to exactly `length` tokens; returns the number of target tokens."""
        batch_size = input_ids.shape[0]
        batch = {
            "src": input_ids.unsqueeze(-1),  # (B, S, 1)
            "srclen": torch.full((batch_size,), input_ids.shape[1]),
            "indices": torch.arange(batch_size),
        }
        with torch.no_grad():
            results = self._translator(num_beams, length).translate_batch(batch, attn_debug=False)
        return sum(len(hypotheses[0]) for hypotheses in results["predictions"])

    def translate_all(self, batches, num_beams: int, length: int) -> int:
        return sum(self.translate(input_ids, num_beams, length) for input_ids in batches)

    def train_step_fn(self, input_ids: torch.Tensor, labels: torch.Tensor):
        """One forward + loss + backward + Adam step on (B, S) sources and (B, T) targets, as a closure."""
        model = self.model
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        src = input_ids.unsqueeze(-1)  # (B, S, 1)
        tgt = torch.cat([torch.full_like(labels[:, :1], self.bos), labels], dim=1).unsqueeze(-1)  # (B, 1 + T, 1)
        src_len = torch.full((input_ids.shape[0],), input_ids.shape[1])

        def step():
            dec_out, _ = model(src, tgt, src_len)  # (B, T, H)
            logits = model.generator(dec_out)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum")
            (loss / labels.numel()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

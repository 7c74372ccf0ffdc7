"""
`TranslationTrainer`: the `Seq2SeqTrainer` of hf_seqkd, whose model card and push are the Trainer's own hooks filled
with hf_seqkd's card (as TRL's trainers fill `create_model_card` with theirs).

    card = CardInfo(role="teacher", source_lang="es", target_lang="en", dataset="bible_es_en")
    trainer = TranslationTrainer(model=model, args=args, train_dataset=..., processing_class=tokenizer, card=card)
    trainer.train()
    trainer.evaluate_test_split(test_split, name="teacher")  # <output_dir>/eval_results.json
    trainer.create_model_card()  # README.md, from those results
    trainer.push_to_hub()  # the model, tokenizer, card and results, once
"""

import inspect
import logging
from pathlib import Path

import torch
from huggingface_hub import ModelCard
from transformers import Seq2SeqTrainer

from .evaluation import evaluate_split
from .hub import CardInfo, prepare_push_folder, push_folder, render_model_card

logger = logging.getLogger(__name__)

RESULTS_NAME = "eval_results.json"


class TranslationTrainer(Seq2SeqTrainer):
    """
    A [`~transformers.Seq2SeqTrainer`] whose model card is hf_seqkd's: `create_model_card` renders `hub_cards/` from
    the test evaluation in `<output_dir>/eval_results.json` (written by [`~hf_seqkd.evaluation.evaluate_split`]) and
    the facts of `card`, so that `push_to_hub()` uploads the model with a card of measured results.

    `push_to_hub()` is the Trainer's (its repository from `init_hf_repo`, `hub_model_id`, `hub_token`,
    `hub_private_repo`, `hub_revision`), except for what it uploads: the repository only (weights in safetensors,
    config, generation config, modeling code, tokenizer, card and `eval_results.json`), not the checkpoints, trainer
    state, data caches and earlier stages that `output_dir` also holds; the weight files of an earlier push are
    replaced. [`~hf_seqkd.training.run_training`] keeps the Trainer's pushes during training off (there are no
    results for the card until the model is evaluated), so a recipe pushes once, after evaluating.

    Args:
        card ([`~hf_seqkd.hub.CardInfo`], *optional*): what the card says besides the results: role, language pair,
            datasets and, for a student, how it was distilled. Needed by `create_model_card` and `push_to_hub`.
        args, kwargs: those of [`~transformers.Seq2SeqTrainer`].
    """

    _NO_CARD = (
        "No card facts: build the trainer with card=hf_seqkd.hub.CardInfo(role=..., source_lang=..., target_lang=..., "
        "dataset=...) (run_training passes `card` on) for hf_seqkd's model card and its test evaluation."
    )

    def __init__(self, *args, card: CardInfo | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.card = card
        if self.args.dataloader_pin_memory and not torch.accelerator.is_available():
            # Pinned memory only speeds up copies to an accelerator; without one, torch warns at every dataloader.
            self.args.dataloader_pin_memory = False

    def evaluate_test_split(self, split, name: str = "model", num_beams: int = 5, batch_size: int = 64) -> dict:
        """
        Evaluates the trained model on a raw parallel split in the language pair of `card` (BLEU and chrF greedy and
        beam, perplexity, p(t=ŷ), words/s: [`~hf_seqkd.evaluation.evaluate_split`]), into
        `<output_dir>/eval_results.json`, the results the model card is filled from. Returns them.
        """
        if self.card is None:
            raise ValueError(self._NO_CARD)
        return evaluate_split(
            self.model, self.processing_class, split, self.card.source_lang, self.card.target_lang,
            self.args.output_dir, name=name, num_beams=num_beams, batch_size=batch_size,
        )  # fmt: skip

    def model_card(self, model_name: str | None = None, license: str | None = None, tags=None, **kwargs) -> ModelCard:
        """
        The card `create_model_card` writes: rendered from `eval_results.json` and `card`. `model_name` (the name in
        `model-index`; by default the Hub id's), `license` and extra `tags` are used; the Trainer's other card
        arguments (`language`, `dataset`, `finetuned_from`, ...) come from `card`, so giving one is an error.
        """
        if kwargs:
            raise TypeError(
                f"{sorted(kwargs)} come from the trainer's `card` (hf_seqkd.hub.CardInfo): set them there."
            )
        results = Path(self.args.output_dir) / RESULTS_NAME
        if self.card is None:
            raise ValueError(self._NO_CARD)
        if not results.is_file():
            raise ValueError(
                f"{results}: no evaluation to fill the model card from. Evaluate the trained model first: "
                f"trainer.evaluate_test_split(test_split) (hf_seqkd.evaluation.evaluate_split into output_dir)."
            )
        facts = self.card.render_kwargs()
        if license is not None:
            facts["license"] = license
        # Without a Hub id the usage snippets load the local folder, which then works as written.
        repo_id = self.hub_model_id or self.args.hub_model_id or str(self.args.output_dir)
        return render_model_card(
            results, repo_id=repo_id, model_name=model_name, config=self.model.config, extra_tags=tags, **facts
        )

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """
        Writes hf_seqkd's model card ([`model_card`], which takes the same arguments) to `<output_dir>/README.md`
        on the main process, in place of the Trainer's draft.
        """
        if not self.is_world_process_zero():
            return
        path = Path(self.args.output_dir) / "README.md"
        self.model_card(model_name, **kwargs).save(path)
        logger.info(f"Model card written to {path}.")

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs,
    ):
        """
        Uploads the model, its tokenizer, hf_seqkd's card and `eval_results.json` to `hub_model_id` in one commit
        (see the class docstring), after writing the card into `output_dir`. Arguments as
        `Trainer.push_to_hub`; `kwargs` go to [`create_model_card`].

        Returns:
            `CommitInfo` (a `Future` of it with `blocking=False`) on the main process, `None` on the others.
        """
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        if not self.is_world_process_zero():
            return None
        card = self.model_card(kwargs.pop("model_name", None), **kwargs)  # a card that cannot be made fails here
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            if "private" in inspect.signature(self.init_hf_repo).parameters:
                self.init_hf_repo(token=token, private=private)
            else:  # older transformers 5 releases (5.17): init_hf_repo reads args.hub_private_repo only
                if private is not None:
                    self.args.hub_private_repo = private
                self.init_hf_repo(token=token)
        self._finish_current_push()
        output_dir = Path(self.args.output_dir)
        files = prepare_push_folder(
            self.model, self.processing_class, card, output_dir, extra_files=[output_dir / RESULTS_NAME]
        )
        commit = push_folder(
            output_dir,
            self.hub_model_id,
            files=files,
            token=token,
            revision=revision if revision is not None else self.args.hub_revision,
            commit_message=commit_message,
            create_repo=False,  # init_hf_repo made it
            run_as_future=not blocking,
        )
        logger.info(f"Pushed to {getattr(commit, 'commit_url', self.hub_model_id)}.")
        return commit

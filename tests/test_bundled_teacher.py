"""The teacher bundled in models/bible-es-en-teacher: loads through the Auto classes as float32 and translates well."""

import json
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.evaluation import corpus_scores, decode_and_score

TEACHER = Path(__file__).resolve().parent.parent / "models" / "bible-es-en-teacher"


def test_bundled_teacher_translates_the_first_200_test_sentences_at_20_bleu_with_beam_5():
    model = AutoModelForSeq2SeqLM.from_pretrained(TEACHER)
    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    assert model.dtype == torch.float32  # stored in float16, computed in float32 (fast on any CPU)
    args = DataArguments(dataset_name="bible_es_en", source_lang="es", target_lang="en", max_eval_samples=200)
    sources, references = source_and_target_texts(load_parallel_dataset(args)["test"], args)
    assert len(sources) == 200

    run = decode_and_score(model, tokenizer, sources, num_beams=5, batch_size=64)

    # 20.53 when the teacher was bundled (the book of Ruth, harder than the rest of the test split).
    assert corpus_scores(run["hypotheses"], references)["bleu"] >= 20.0


def test_bundled_teacher_card_and_results_agree():
    results = json.loads((TEACHER / "eval_results.json").read_text())
    card = (TEACHER / "README.md").read_text()
    assert f"| BLEU | {results['bleu_greedy']:.2f} | {results['bleu_beam']:.2f} |" in card
    assert "trust_remote_code" not in card and not list(TEACHER.glob("*.py"))  # no code ships: the card says so

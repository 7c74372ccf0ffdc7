"""
The README's "Your own data and teacher" as a user runs it: plain parallel text files (`corpus/train.es` +
`corpus/train.en`, ...), a transformers teacher with its own tokenizer (a tiny MarianMT made here, no download),
Seq-KD data from recipes/distill_data.py, an LSTM student with its own vocabulary from recipes/train_student.py,
then recipes/evaluate.py and recipes/prune_student.py on the same files; and recipes/train_teacher.py on them.
"""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
from helpers import tiny_marian
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd.data import DataArguments, load_parallel_dataset

REPO = Path(__file__).resolve().parent.parent


def load_recipe(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """corpus/{train,valid,test}.{es,en} from the bundled corpus; the test split gzipped."""
    folder = tmp_path_factory.mktemp("corpus")
    bundled = load_parallel_dataset(DataArguments(dataset_name="bible_es_en"))
    for split, name, count in (("train", "train", 24), ("validation", "valid", 4), ("test", "test", 4)):
        pairs = bundled[split]["translation"][:count]
        for lang in ("es", "en"):
            text = "".join(pair[lang] + "\n" for pair in pairs)
            if name == "test":
                with gzip.open(folder / f"{name}.{lang}.gz", "wt", encoding="utf-8") as handle:
                    handle.write(text)
            else:
                (folder / f"{name}.{lang}").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def marian_teacher(tmp_path_factory, tokenizer):
    """A MarianMT folder with its own tokenizer (120 tokens), as a user's teacher from the Hub would be."""
    folder = tmp_path_factory.mktemp("opus-mt-es-en")
    model = tiny_marian(tokenizer, seed=3, scale=8.0)
    model.generation_config.max_new_tokens = 8
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def data_flags(corpus):
    return [
        "--train_file", str(corpus / "train"), "--validation_file", str(corpus / "valid"),
        "--test_file", str(corpus / "test"), "--source_lang", "es", "--target_lang", "en",
    ]  # fmt: skip


LSTM_STUDENT = [
    "--embedding_size", "16", "--hidden_size", "16", "--layers", "1", "--dropout", "0.0",
    "--tokenizer_vocab_size", "200", "--max_source_length", "48", "--max_target_length", "48",
    "--per_device_train_batch_size", "8", "--max_steps", "2", "--learning_rate", "0.003",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
]  # fmt: skip


def test_files_and_a_marian_teacher_to_a_distilled_evaluated_pruned_lstm_student(tmp_path, corpus, marian_teacher):
    data = tmp_path / "seq_kd_data"
    distilled = load_recipe("distill_data").main(
        ["--teacher_model_name_or_path", marian_teacher, "--output_dir", str(data), *data_flags(corpus),
         "--mode", "seq_kd", "--num_beams", "2", "--batch_size", "8"]
    )  # fmt: skip
    assert len(distilled["train"]) == 24 and len(distilled["test"]) == 4
    assert distilled["train"]["reference"][0].startswith("In the beginning")  # the file's line 1 on the English side

    student = tmp_path / "student"
    results = load_recipe("train_student").main(
        ["--mode", "seq_kd", "--seq_kd_dataset", str(data / "dataset"), "--output_dir", str(student),
         *data_flags(corpus), *LSTM_STUDENT]
    )  # fmt: skip
    assert results["num_sentences"] == 4
    model = AutoModelForSeq2SeqLM.from_pretrained(student)
    assert model.config.model_type == "lstm_seq2seq" and model.config.vocab_size == 200  # not the teacher's 120
    assert len(AutoTokenizer.from_pretrained(student)) == 200
    card = (student / "README.md").read_text()
    assert marian_teacher in card and "datasets:" not in card.split("---")[1]  # local files are not Hub datasets

    evaluated = load_recipe("evaluate").main(
        ["--model_name_or_path", str(student), "--output_dir", str(tmp_path / "eval"), *data_flags(corpus),
         "--num_beams", "2", "--name", "student"]
    )  # fmt: skip
    assert evaluated["num_sentences"] == 4 and evaluated["bleu_greedy"] == results["bleu_greedy"]

    pruned = load_recipe("prune_student").main(
        ["--model_name_or_path", str(student), "--output_dir", str(tmp_path / "pruned"), "--ratio", "0.5",
         "--max_steps", "0", "--num_beams", "2", "--report_to", "none", *data_flags(corpus)]
    )  # fmt: skip
    assert pruned["num_sentences"] == 4 and pruned["ratio"] == 0.5


def test_train_teacher_reads_plain_text_and_stops_at_a_misaligned_file(tmp_path, corpus):
    teacher = tmp_path / "teacher"
    args = ["--output_dir", str(teacher), *data_flags(corpus), *LSTM_STUDENT, "--max_steps", "1"]
    results = load_recipe("train_teacher").main(args)
    assert results["num_sentences"] == 4 and json.loads((teacher / "eval_results.json").read_text())

    broken = tmp_path / "broken"
    broken.mkdir()
    for lang in ("es", "en"):
        lines = (corpus / f"train.{lang}").read_text().splitlines()
        (broken / f"train.{lang}").write_text("\n".join(lines[:-1] if lang == "en" else lines) + "\n")
    flags = data_flags(corpus)
    flags[1] = str(broken / "train")
    with pytest.raises(ValueError, match=r"broken/train\.es has 24 lines but .*broken/train\.en has 23"):
        load_recipe("train_teacher").main(["--output_dir", str(tmp_path / "never"), *flags, *LSTM_STUDENT])
    assert not (tmp_path / "never").exists()  # stopped before any training


def test_the_readme_commands_parse():
    """The commands of README's "Your own data and teacher" are valid flags of their recipes, as written."""
    import re
    import shlex

    from hf_seqkd.arguments import parse_args

    section = (REPO / "README.md").read_text().split("### Your own data and teacher")[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    data = shlex.split(lines[0].split("=", 1)[1])[0]
    commands = [shlex.split(line.replace("$DATA", data)) for line in lines[1:]]
    assert [command[1] for command in commands] == [
        "recipes/distill_data.py", "recipes/train_student.py", "recipes/evaluate.py"
    ]  # fmt: skip
    for command in commands:
        recipe = load_recipe(Path(command[1]).stem)
        parsed = parse_args(recipe.ARGUMENTS, command[2:], check_inputs=False)  # its paths are examples
        data_args = next(args for args in parsed if type(args).__name__ == "DataArguments")
        assert (data_args.train_file, data_args.source_lang, data_args.target_lang) == ("corpus/train", "de", "en")

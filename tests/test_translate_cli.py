"""hf-seqkd-translate: line for line equal to translate(), from stdin or a file, in-process and as installed."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, tiny_model

from hf_seqkd.cli import main, read_lines
from hf_seqkd.translation import load_translation_model, translate

# Blank lines between sentences: they must come out as empty lines, not shift the others.
LINES = [SOURCES[0], "", SOURCES[1], "   ", SOURCES[2], SOURCES[3]]
ARGS = ["--num_beams", "2", "--batch_size", "2"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = 8  # short outputs: fast, and saved with the model
    folder = tmp_path_factory.mktemp("cli") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def expected(model_folder):
    """What translate() gives for the non-blank lines, with the blank lines left empty."""
    model, tokenizer = load_translation_model(str(model_folder))
    sentences = [line for line in LINES if line.strip()]
    translations = iter(translate(sentences, model, tokenizer, num_beams=2, batch_size=2))
    return [next(translations) if line.strip() else "" for line in LINES]


def test_stdin_to_stdout_without_progress_bar(model_folder, expected, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in LINES)))
    assert main(["--model", str(model_folder), *ARGS]) == 0
    captured = capsys.readouterr()
    assert captured.out.split("\n") == expected + [""]
    assert any(expected) and "" in expected
    assert "%|" not in captured.err  # no tqdm bar (neither translation nor weight loading) next to the output


def test_file_to_file_with_progress_bar(model_folder, expected, tmp_path, capsys):
    source = tmp_path / "source.es"
    source.write_bytes("".join(line + "\r\n" for line in LINES).encode("utf-8"))  # Windows line ends too
    output = tmp_path / "out" / "translation.en"
    assert main(["--model", str(model_folder), *ARGS, "--input", str(source), "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8").split("\n") == expected + [""]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4/4" in captured.err and "sent" in captured.err  # the bar counts the 4 non-blank sentences


@pytest.mark.parametrize("batch_size, rows", [("64", 2 * 4), ("3", 2 * 3)])
def test_dtype_auto_is_measured_for_the_rows_of_this_search(
    model_folder, expected, tmp_path, monkeypatch, batch_size, rows
):
    """4 sentences, 2 beams: a search step has min(batch size, 4) x 2 rows; auto is measured for that many."""
    import hf_seqkd.cli

    asked = []
    monkeypatch.setattr(
        hf_seqkd.cli, "resolve_dtype", lambda name, device, rows: asked.append((name, rows)) or torch.float32
    )
    source = tmp_path / "source.es"
    source.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    output = tmp_path / "translation.en"
    argv = ["--model", str(model_folder), "--num_beams", "2", "--batch_size", batch_size, "--dtype", "auto"]
    assert main([*argv, "--input", str(source), "--output", str(output)]) == 0
    assert asked == [("auto", rows)]
    if batch_size == "64":
        assert output.read_text(encoding="utf-8").split("\n") == expected + [""]


def test_only_blank_lines_never_load_a_sentence_into_the_model(model_folder, tmp_path, capsys):
    source = tmp_path / "blank.txt"
    source.write_text("\n\n")
    assert main(["--model", str(model_folder), "--input", str(source)]) == 0
    assert capsys.readouterr().out == "\n\n"


def test_bad_arguments_exit_with_usage(model_folder, tmp_path):
    with pytest.raises(SystemExit) as error:
        main(["--model", str(model_folder), "--input", str(tmp_path / "missing.txt")])
    assert error.value.code == 2
    with pytest.raises(SystemExit):
        main(["--model", str(model_folder), "--num_beams", "0"])


def test_installed_console_script(model_folder, expected, tmp_path):
    script = Path(sys.executable).parent / "hf-seqkd-translate"
    script = str(script) if script.exists() else shutil.which("hf-seqkd-translate")
    assert script, "hf-seqkd-translate is not installed: pip install -e ."
    result = subprocess.run(
        [script, "--model", str(model_folder), *ARGS],
        input="".join(line + "\n" for line in LINES),
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n") == expected + [""]


def test_lone_carriage_return_does_not_split_a_line(model_folder, tmp_path, capsys):
    source = tmp_path / "source.es"
    source.write_bytes(f"{SOURCES[0]}\rmás\n{SOURCES[1]}\r\n{SOURCES[2]}".encode())  # and no newline at the end
    assert read_lines(str(source)) == [f"{SOURCES[0]}\rmás", SOURCES[1], SOURCES[2]]
    assert main(["--model", str(model_folder), *ARGS, "--input", str(source)]) == 0
    assert len(capsys.readouterr().out.split("\n")) == 3 + 1  # one output line per input line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_new_tokens", "0"], "--max_new_tokens 0: must be >= 1"),
        (["--max_source_length", "-1"], "--max_source_length -1: must be >= 1"),
        (["--model", "./no/such/model"], "--model ./no/such/model: no such folder"),
    ],
)
def test_bad_arguments_name_the_argument(model_folder, argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(["--model", str(model_folder), *argv])
    assert error.value.code == 2 and message in capsys.readouterr().err


def test_non_utf8_input_names_the_line(model_folder, tmp_path, capsys):
    source = tmp_path / "source.es"
    source.write_bytes(b"hola\n" + "canci\u00f3n\n".encode("latin-1"))
    with pytest.raises(SystemExit):
        main(["--model", str(model_folder), "--input", str(source)])
    assert "source.es, line 2: not UTF-8" in capsys.readouterr().err

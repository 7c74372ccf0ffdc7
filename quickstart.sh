#!/usr/bin/env bash
# The main job of hf_seqkd in one command, on a fresh machine with only Python 3:
#
#   bash quickstart.sh          # distil a Seq-KD student from the bundled teacher, then compare the two
#   bash quickstart.sh tests    # run the test suite
#
# Both make (or reuse) a virtual environment in .venv, install PyTorch's CPU build first (PyTorch's CPU wheel index
# when it is reachable, else whatever pip is configured with, e.g. a local wheel), then this package with its test
# extras. The first command then runs, through `accelerate launch`, recipes/train_student.py in Seq-KD mode: the
# bundled teacher (models/bible-es-en-teacher) beam-searches the training sentences, the student trains on its
# translations, and both translate the test split (BLEU, words/s). Outputs go to outputs/quickstart/; a
# killed run started again resumes.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
source .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
    CPU_INDEX=https://download.pytorch.org/whl/cpu
    if python -c "import urllib.request as u; u.urlopen('$CPU_INDEX/', timeout=5)" 2>/dev/null; then
        python -m pip install --quiet torch==2.13.0 --index-url "$CPU_INDEX"
    else
        python -m pip install --quiet torch==2.13.0
    fi
fi
if ! python -c "import hf_seqkd, pytest" 2>/dev/null; then
    python -m pip install --quiet -e ".[test]"
fi

if [ "${1:-}" = "tests" ]; then
    HF_HUB_OFFLINE=1 python -m pytest -q
    exit
fi

accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    recipes/train_student.py --config recipes/bible_es_en/quickstart/config.yaml
# The student's greedy search beside the teacher's beam search on the test split: BLEU and words/s, same machine.
python benchmarks/bench_decode_speed.py --student outputs/quickstart/student --teacher models/bible-es-en-teacher \
    --dataset_name bible_es_en --source_lang es --target_lang en --batch_sizes 64 \
    --output_dir outputs/quickstart/decode_speed

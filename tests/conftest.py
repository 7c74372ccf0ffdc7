import itertools
import os

import pytest
import torch
from helpers import SOURCES, TARGETS

from hf_seqkd.tokenization import train_tokenizer

# Tiny models run fastest on one thread; and two OpenMP pools spinning on a 2-core machine (this process and a
# subprocess, or a job beside the tests) make each 10-100x slower. Subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(itertools.chain(SOURCES, TARGETS), vocab_size=120, min_frequency=1)

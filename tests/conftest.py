import itertools

import pytest
from helpers import SOURCES, TARGETS

from hf_seqkd.tokenization import train_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(itertools.chain(SOURCES, TARGETS), vocab_size=120, min_frequency=1)

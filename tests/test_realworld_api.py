"""acbench_realworld through lm-eval's own API clients, against a real OpenAI-compatible server.

``tests/openai_server.py`` serves the tiny random HF model (``/v1/completions`` and
``/v1/chat/completions``, greedy generation, stop strings applied; 404 elsewhere). The real
``lm_eval`` command line runs ``local-chat-completions`` and ``local-completions`` against it,
so lm-eval's request building, batching and response parsing are exercised, not mocked. What is
checked: the run completes and logs the episode transcripts; what the server received is what
the transcripts say was sent and answered; later steps carry the earlier actions and
observations (multi-turn); and the number of prompts (and of HTTP calls, for batched
completions) is what one batched model call per loop step over the live episodes makes.
``vllm`` itself needs a GPU and is not run.
"""

from __future__ import annotations

import json

import pytest

from helpers import run_lm_eval, served_env

TASK = "acbench_realworld_tool_query"
MAX_STEPS = 3
MAX_GEN_TOKS = 8
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def run_served(tmp_path, model: str, model_args: str, *extra: str) -> dict:
    return run_lm_eval(["--model", model, "--model_args", model_args, "--tasks", TASK, "--limit", "2",
                        "--gen_kwargs", f"max_gen_toks={MAX_GEN_TOKS}",
                        "--metadata", json.dumps({"max_steps": MAX_STEPS}), *extra],
                       tmp_path, timeout=600, env=served_env())


def logged_transcripts(out) -> list[dict]:
    assert 0.0 <= out["results"]["results"][TASK]["progress_rate,none"] <= 1.0
    samples = out["samples"][TASK]
    assert len(samples) == 2
    transcripts = [json.loads(sample["resps"][0][0]) for sample in samples]
    assert transcripts[0]["goal"] != transcripts[1]["goal"]
    for transcript in transcripts:
        steps = transcript["trajectory"]
        assert 1 <= len(steps) <= MAX_STEPS and transcript["end_reason"]
        for step in steps:
            assert {"prompt", "output", "action", "observation", "valid", "progress"} <= set(step)
            assert isinstance(step["prompt"], str) and isinstance(step["output"], str)
    return transcripts


def check_against_server(transcripts, calls, *, batch_size: int, sent_prompt) -> None:
    """The server's requests, call by call, are the loop's steps over the live episodes.

    ``calls`` are the server's records of the generation requests, in arrival order;
    ``sent_prompt(step, call)`` says whether the transcript step's prompt is what the call sent.
    """
    for call in calls:
        body = call["body"]
        assert body["max_tokens"] == MAX_GEN_TOKS and body["temperature"] == 0
        assert "Observation:" in body["stop"]  # the task's stop strings reach the server
    served = [(call, text, output)
              for call in calls for text, output in zip(call["prompts"], call["outputs"])]
    n_steps = max(len(t["trajectory"]) for t in transcripts)
    assert n_steps >= 2  # else the multi-turn checks below would check nothing
    live = [sum(len(t["trajectory"]) >= k for t in transcripts) for k in range(1, n_steps + 1)]
    # one prompt per live episode and step, however the client splits them into HTTP calls
    assert len(served) == sum(live) == sum(len(t["trajectory"]) for t in transcripts)
    expected_calls = [min(batch_size, n - i) for n in live for i in range(0, n, batch_size)]
    assert [len(call["prompts"]) for call in calls] == expected_calls
    position = 0
    for k, n_live in enumerate(live, start=1):
        block, position = served[position:position + n_live], position + n_live
        playing = [t for t in transcripts if len(t["trajectory"]) >= k]
        for transcript in playing:
            # requests within a step may be reordered by the client; match them by goal
            (call, text, output), = [s for s in block if f"Goal: {transcript['goal']}" in s[1]]
            step = transcript["trajectory"][k - 1]
            assert sent_prompt(step, call, text)
            assert step["output"] == output  # the server's answer, unchanged, is the logged output
            if k == 1:
                assert "Recent history" not in text
            else:  # multi-turn: the model saw the previous action and its observation
                before = transcript["trajectory"][k - 2]
                assert f"Action: {before['action']}\nObservation: {before['observation']}" in text
                assert f"Latest observation: {before['observation']}" in text


@pytest.mark.slow
def test_local_chat_completions_with_chat_template(tmp_path, served):
    out = run_served(tmp_path, "local-chat-completions", f"model=tiny-llama,base_url={served.url(CHAT)}",
                     "--apply_chat_template")
    transcripts = logged_transcripts(out)
    assert [r["path"] for r in served.received()] == [CHAT] * len(served.received())  # no other endpoint

    def sent_prompt(step, call, text):
        # the transcript logs the messages exactly as posted; the server rendered them itself
        messages = json.loads(step["prompt"])
        return (messages == call["body"]["messages"] and messages[0]["role"] == "system"
                and text.endswith("<|im_start|>assistant"))

    check_against_server(transcripts, served.received(CHAT), batch_size=1, sent_prompt=sent_prompt)


@pytest.mark.slow
def test_local_completions_with_chat_template_batched_token_ids(tmp_path, served, tiny_model_dir):
    out = run_served(tmp_path, "local-completions",
                     f"model=tiny-llama,base_url={served.url(COMPLETIONS)},tokenizer={tiny_model_dir},"
                     "tokenizer_backend=huggingface", "--apply_chat_template", "--batch_size", "2")
    transcripts = logged_transcripts(out)
    calls = served.received(COMPLETIONS)
    assert len(calls) == len(served.received())  # tokenizer_backend given: no remote-tokenizer probe
    # batches of token-id lists: both live episodes' prompts go in one request per step
    assert all(isinstance(p, list) and all(isinstance(t, int) for t in p)
               for call in calls for p in call["body"]["prompt"])

    def sent_prompt(step, call, text):  # the chat-templated text, tokenized by lm-eval; the tiny
        # template takes tools, so the environment's tool schemas are rendered too (as for hf)
        return step["prompt"] == text and text.startswith("<|im_start|>system") and "<tools>" in text

    check_against_server(transcripts, calls, batch_size=2, sent_prompt=sent_prompt)


@pytest.mark.slow
def test_local_completions_plain_prompt_and_tokenizer_probe(tmp_path, served, tiny_model_dir):
    # tokenizer_backend left at "auto": lm-eval probes for a remote tokenizer, gets 404s and
    # falls back to the HF tokenizer; tokenized_requests=False sends the prompt as a string
    out = run_served(tmp_path, "local-completions",
                     f"model=tiny-llama,base_url={served.url(COMPLETIONS)},tokenizer={tiny_model_dir},"
                     "tokenized_requests=False")
    transcripts = logged_transcripts(out)
    probes = [r for r in served.received() if r["path"] != COMPLETIONS]
    assert probes and all(r["status"] == 404 and r["path"] == "/tokenizer_info" for r in probes)
    calls = served.received(COMPLETIONS)
    assert all(isinstance(call["body"]["prompt"], str) for call in calls)

    def sent_prompt(step, call, text):  # no chat template: the plain prompt, continued after "Action:"
        return step["prompt"] == text == call["body"]["prompt"] and text.endswith("\nAction:")

    check_against_server(transcripts, calls, batch_size=1, sent_prompt=sent_prompt)


def test_chat_api_prompts_are_logged_as_text(served):
    """Regression: an API chat model's ``apply_chat_template`` returns lm-eval's ``JsonChatStr``
    (a NamedTuple), which the transcript logged as a one-element JSON list; it is now the JSON
    text of the messages that were posted. In process, real client, real server."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalChatCompletion

    from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, _episode_aware
    from lm_eval_acbench.tasks.realworld import load_episodes

    records = load_episodes("tool-query", {"data_source": "sample"})[:2]
    lm = LocalChatCompletion(model="tiny-llama", base_url=served.url(CHAT), max_retries=1)
    loop = json.dumps({"max_steps": 2})
    requests = [Instance("generate_until", {EPISODE_FIELD: json.dumps(r), LOOP_FIELD: loop},
                         ("label", {"until": ["\n\n"], "max_gen_toks": 4}), 0, (TASK, i, 1))
                for i, r in enumerate(records)]
    with _episode_aware(lm, apply_chat_template=True, system_instruction="Be brief."):
        out = lm.generate_until(requests)
    transcripts = [json.loads(o) for o in out]
    calls = served.received(CHAT)
    assert len(calls) == sum(len(t["trajectory"]) for t in transcripts)
    posted = [call["body"]["messages"] for call in calls]
    for transcript in transcripts:
        for step in transcript["trajectory"]:
            assert isinstance(step["prompt"], str)
            messages = json.loads(step["prompt"])
            assert messages in posted and messages[0]["content"].startswith("Be brief.\n\n")

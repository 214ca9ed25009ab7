"""The real ``lm_eval`` command line, per model type, against an OpenAI-compatible test server.

``tests/openai_server.py`` serves the tiny random model (and parses ``<tool_call>`` replies into
``tool_calls`` as vLLM's hermes parser does). Run for real: every message-list task (T-Eval's six
dimensions, function calling's ten categories) and one task of each other capability, under
``local-chat-completions`` and ``local-completions`` (both with ``--apply_chat_template``), and
native function calling under ``acbench-chat-completions``. ``--limit 1`` (2 for native) and
8 new tokens keep it bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import run_lm_eval, served_env

from lm_eval_acbench.metrics.tool_calls import format_calls

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
MESSAGE_LIST_GROUPS = ["acbench_teval", "acbench_function_call"]
ONE_PER_CAPABILITY = ["acbench_workflow_wikihow", "acbench_longbench_qasper", "acbench_realworld_tool_query"]
MAX_LENGTH, MAX_GEN_TOKS = 700, 8


def run(tmp_path, model: str, model_args: str, tasks: list[str], limit: int = 1) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_lm_eval(["--model", model, "--model_args", model_args, "--tasks", ",".join(tasks),
                        "--limit", str(limit), "--apply_chat_template",
                        "--gen_kwargs", f"max_gen_toks={MAX_GEN_TOKS}",
                        # max_length only for LongBench's budget: in model_args lm-eval would also
                        # cut long function-calling prompts from the left
                        "--metadata", json.dumps({"data_source": "sample", "max_steps": 2,
                                                  "max_length": MAX_LENGTH})],
                       tmp_path, timeout=900, env=served_env())


def leaf_tasks(out) -> dict[str, list[dict]]:
    return {name: rows for name, rows in out["samples"].items()}


def logged_prompt(sample) -> str:
    prompt = sample["arguments"]["gen_args_0"]["arg_0"]
    return prompt[0] if isinstance(prompt, list) else prompt  # a JsonChatStr is logged as [json]


def check_common(out, message_list_modes: set[str]) -> None:
    samples = leaf_tasks(out)
    dimensions = ("instruct", "plan", "reason", "retrieve", "understand", "review")
    expected = ({f"acbench_teval_{d}" for d in dimensions}
                | {t for t in samples if t.startswith("acbench_function_call_")} | set(ONE_PER_CAPABILITY))
    assert len([t for t in samples if t.startswith("acbench_function_call_")]) == 10
    assert expected <= set(out["results"]["results"]) and expected <= set(samples)
    for name, rows in samples.items():
        assert len(rows) == 1, name
        if name.startswith(("acbench_teval_", "acbench_function_call_")):
            assert rows[0]["doc"]["acbench_render"]["mode"] in message_list_modes, name
    (qasper,) = samples["acbench_longbench_qasper"]
    budget = MAX_LENGTH - MAX_GEN_TOKS - 64  # --gen_kwargs' 8 tokens, not qasper's own 128, set it
    assert qasper["doc"]["prompt_tokens"] > budget and qasper["doc"]["prompt_tokens_kept"] == budget
    (episode,) = samples["acbench_realworld_tool_query"]
    assert 1 <= len(json.loads(episode["resps"][0][0])["trajectory"]) <= 2


@pytest.mark.slow
def test_chat_and_completions_apis_run_every_message_list_task_on_the_same_items(tmp_path, served,
                                                                                 tiny_model_dir):
    tasks = MESSAGE_LIST_GROUPS + ONE_PER_CAPABILITY
    chat = run(tmp_path / "chat", "local-chat-completions",
               f"model=tiny,base_url={served.url(CHAT)},tokenizer={tiny_model_dir}", tasks)
    check_common(chat, {"messages", "messages+system_tools"})
    bodies = [r["body"] for r in served.received(CHAT)]
    assert bodies and len(served.received()) == len(bodies)
    for name, (sample,) in leaf_tasks(chat).items():
        if name.startswith(("acbench_teval_", "acbench_function_call_")):
            messages = json.loads(logged_prompt(sample))  # the message list lm-eval posted, as is
            assert messages in [b["messages"] for b in bodies], name
    assert all(m["role"] in ("system", "user", "assistant") for b in bodies for m in b["messages"])

    served.clear()
    completions = run(tmp_path / "completions", "local-completions",
                      f"model=tiny,base_url={served.url(COMPLETIONS)},tokenizer={tiny_model_dir},"
                      "tokenizer_backend=huggingface", tasks)
    check_common(completions, {"template", "template+tools"})
    sent = [text for r in served.received(COMPLETIONS) for text in r["prompts"]]
    for name, (sample,) in leaf_tasks(completions).items():
        if name.startswith("acbench_function_call_"):  # the tiny template renders the tools itself
            assert sample["doc"]["acbench_render"]["mode"] == "template+tools"
            assert '"type": "function"' in logged_prompt(sample) and logged_prompt(sample) in sent

    def items(out):
        return {name: [s["doc"].get("id", s["doc_id"]) for s in rows]
                for name, rows in leaf_tasks(out).items()}

    assert items(chat) == items(completions)  # the same items are scored under both model types


def _gold_replies() -> dict[str, dict]:
    """User message -> the gold call of that item (BFCL name, first accepted value per argument)."""
    from lm_eval_acbench.data import doc_json
    from lm_eval_acbench.tasks.function_call import load_category

    gold = {}
    for category in ("simple", "multiple"):
        for doc in load_category(category, data_source="sample")["test"]:
            name, args = next(iter(doc_json(doc, "ground_truth")[0].items()))
            user = [m["content"] for m in doc_json(doc, "messages") if m["role"] == "user"][-1]
            gold[user] = {"name": name, "arguments": {k: v[0] for k, v in args.items() if v and v[0] != ""}}
    return gold


@pytest.mark.slow
def test_native_function_calling_end_to_end_beside_prompting(tmp_path, served):
    gold = _gold_replies()

    def reply(body):
        # The model "writes" the gold call: hermes style with the names it was offered when the
        # tools came as tools= (the server turns it into tool_calls), else as the Python call list
        # the prompting mode's system prompt asks for (what BFCL's prompting decoder reads).
        call = dict(next(v for k, v in gold.items() if any(k in m["content"] for m in body["messages"])))
        offered = {t["function"]["name"] for t in body.get("tools") or []}
        if not offered:
            return format_calls([{call["name"]: call["arguments"]}], "python")
        call["name"] = next(n for n in offered if n == call["name"].replace(".", "_"))
        return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"

    served.reply = reply
    tasks = ["acbench_function_call_native_simple", "acbench_function_call_native_multiple",
             "acbench_function_call_simple", "acbench_function_call_multiple"]
    out = run(tmp_path, "acbench-chat-completions", f"model=tiny,base_url={served.url(CHAT)}", tasks, limit=2)
    results = out["results"]["results"]
    for task in tasks:  # both modes, each under its own name, every item right
        assert results[task]["accuracy,none"] == 1.0 and results[task]["parse_rate,none"] == 1.0, task
        fmt = "json" if "native" in task else "python"  # tool_calls vs the reply's text
        assert {s["doc"]["acbench_verdict"]["format_fixed"] for s in out["samples"][task]} == {fmt}
    bodies = [r["body"] for r in served.received(CHAT)]
    native = [b for b in bodies if "tools" in b]
    assert len(native) == len(bodies) / 2 and all(b["tool_choice"] == "auto" for b in native)
    assert any("." in n for n in (m["name"] for s in out["samples"]["acbench_function_call_native_simple"]
                                  for m in json.loads(s["doc"]["functions"])))  # dotted names were mapped
    assert all("." not in t["function"]["name"] for b in native for t in b["tools"])
    assert all("<tools>" not in json.dumps(b["messages"]) for b in native)


@pytest.mark.slow
def test_native_mode_under_a_plain_chat_client_fails_with_one_clear_line(tmp_path, served):
    cmd = [sys.executable, "-m", "lm_eval", "--model", "local-chat-completions", "--model_args",
           f"model=tiny,base_url={served.url(CHAT)}", "--tasks", "acbench_function_call_native_simple",
           "--limit", "1", "--apply_chat_template", "--metadata", json.dumps({"data_source": "sample"})]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **served_env()})
    assert done.returncode != 0
    assert "needs --model acbench-chat-completions" in done.stderr
    assert not served.received()  # refused before any request

"""How acbench prompts reach each kind of lm-eval model, in process (fast; the tiny random model).

The real lm-eval model classes build the prompts: ``LocalChatCompletion`` (chat APIs: lm-eval's
``JsonChatStr``), ``HFLM`` (local rendering with ``chat_template_args`` and named templates) and
our ``acbench-chat-completions``. The command-line runs against a served model are in
``test_model_types_cli.py``.
"""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lm_eval_acbench import run_args
from lm_eval_acbench.chat import FUNCTION_PREFIX
from lm_eval_acbench.paths import task_dir

CHAT_URL = "http://127.0.0.1:9/v1/chat/completions"  # never contacted: only prompts are built here


@pytest.fixture(scope="module")
def tasks():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir()), include_defaults=False,
                          metadata={"data_source": "sample"})
    names = ["acbench_teval_instruct", "acbench_teval_plan", "acbench_function_call_simple",
             "acbench_function_call_native_simple"]
    return manager.load(names)["tasks"]


def first_doc(task):
    return next(iter(task.test_docs()))


def model_copy(tiny_model_dir, tmp_path, template):
    """The tiny model with another chat template (a string, or a dict of named templates)."""
    from transformers import AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(folder))
    return folder


def hf_model(folder, **kwargs):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(folder), device="cpu", max_length=256, **kwargs)


# ---- chat APIs: the message list -----------------------------------------------------------
@pytest.mark.parametrize("name", ["acbench_teval_instruct", "acbench_teval_plan",
                                  "acbench_function_call_simple"])
def test_chat_apis_get_the_dialogue_as_a_message_list(tasks, name):
    from lm_eval.models.api_models import JsonChatStr
    from lm_eval.models.openai_completions import LocalChatCompletion

    from lm_eval_acbench.data import doc_json

    task = tasks[name]
    doc = first_doc(task)
    lm = LocalChatCompletion(model="m", base_url=CHAT_URL)
    prompt = task.fewshot_context(doc, 0, system_instruction="Be exact.", apply_chat_template=True,
                                  chat_template=lm.apply_chat_template)
    assert isinstance(prompt, JsonChatStr)
    sent = json.loads(prompt.prompt)
    original = doc_json(doc, "messages", [])
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("Be exact.")
    assert [m["role"] for m in sent].count("system") == 1  # the instruction joins the dialogue's own
    assert {m["role"] for m in sent} <= {"system", "user", "assistant"}
    for message in original:  # every turn arrives, function results as user turns
        is_result = message["role"] in ("function", "tool")
        text = FUNCTION_PREFIX + message["content"] if is_result else message["content"]
        assert any(text.strip() in m["content"] for m in sent), message["role"]
    if name.startswith("acbench_function_call"):
        system = sent[0]["content"]
        assert "<tools>" in system and json.loads(doc["functions"])[0]["name"] in system
    assert task.rendered(doc).mode == ("messages+system_tools" if "function_call" in name else "messages")
    payload = lm._create_payload(lm.create_message([prompt]), generate=True, gen_kwargs={"max_gen_toks": 4})
    assert payload["messages"] == sent  # lm-eval's own client accepts it (it asserted on text before)


def test_message_list_tasks_refuse_few_shot_instead_of_ignoring_it(tasks):
    task = tasks["acbench_teval_instruct"]
    with pytest.raises(ValueError, match="zero-shot"):
        task.fewshot_context(first_doc(task), 2)


def test_native_mode_needs_a_model_that_sends_tools(tasks):
    from lm_eval.models.openai_completions import LocalChatCompletion

    task = tasks["acbench_function_call_native_simple"]
    lm = LocalChatCompletion(model="m", base_url=CHAT_URL)
    with pytest.raises(ValueError, match="acbench-chat-completions"):
        task.fewshot_context(first_doc(task), 0, apply_chat_template=True,
                             chat_template=lm.apply_chat_template)
    with pytest.raises(ValueError, match="acbench-chat-completions"):
        task.fewshot_context(first_doc(task), 0)


def test_native_mode_sends_tools_with_api_safe_names(tasks):
    from lm_eval_acbench.tool_chat import ToolCallingChatCompletion

    task = tasks["acbench_function_call_native_simple"]
    doc = first_doc(task)
    lm = ToolCallingChatCompletion(model="m", base_url=CHAT_URL)
    prompt = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)
    payload = lm._create_payload(lm.create_message([prompt]), generate=True, gen_kwargs={"max_gen_toks": 4})
    bfcl_names = [f["name"] for f in json.loads(doc["functions"])]
    sent_names = [t["function"]["name"] for t in payload["tools"]]
    assert payload["tool_choice"] == "auto" and len(sent_names) == len(bfcl_names)
    assert all(n.replace(".", "_") == s for n, s in zip(bfcl_names, sent_names))
    assert "<tools>" not in json.dumps(payload["messages"])  # the tools travel only as tools=
    assert task.rendered(doc).mode == "messages+native_tools"
    # a call to the API-safe name is scored as a call to the BFCL function
    gold = json.loads(doc["ground_truth"])[0]
    name, args = next(iter(gold.items()))
    arguments = {k: v[0] for k, v in args.items() if v and v[0] != ""}
    reply = [{"name": name.replace(".", "_"), "arguments": arguments}]
    assert task.process_results(doc, [json.dumps(reply)])["accuracy"] == 1.0
    assert task.process_results(doc, ["no call"])["accuracy"] == 0.0


# ---- local models: rendered text with the model's own template settings -----------------------
FLAG_TEMPLATE = (
    "{%- if tools %}[tools]{% for t in tools %}{{ t.function.name }};{% endfor %}{% endif %}"
    "{%- for m in messages %}[{{ m.role }}] {{ m.content }}\n{%- endfor %}"
    "{%- if flag is defined %}[flag={{ flag }}]{% endif %}"
    "{%- if add_generation_prompt %}[assistant]{% endif %}"
)


def test_local_models_render_tools_and_chat_template_args(tasks, tiny_model_dir, tmp_path):
    folder = model_copy(tiny_model_dir, tmp_path, FLAG_TEMPLATE)
    lm = hf_model(folder, chat_template_args={"flag": "on"})
    task = tasks["acbench_function_call_simple"]
    doc = first_doc(task)
    prompt = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)
    assert isinstance(prompt, str) and "[flag=on]" in prompt
    assert f"[tools]{json.loads(doc['functions'])[0]['name']};" in prompt
    assert task.rendered(doc).mode == "template+tools"
    # without --apply_chat_template the tokenizer named in metadata renders (no model settings)
    plain = task.fewshot_context(doc, 0)
    assert "[flag=on]" not in plain


def test_a_local_model_without_a_chat_template_gets_the_plain_format(tasks, tiny_model_dir, tmp_path):
    lm = hf_model(model_copy(tiny_model_dir, tmp_path, None))
    task = tasks["acbench_function_call_simple"]
    doc = first_doc(task)
    prompt = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)
    assert task.rendered(doc).mode == "plain+system_tools" and prompt.endswith("Assistant:")


def test_a_named_chat_template_is_used(tasks, tiny_model_dir, tmp_path):
    folder = model_copy(tiny_model_dir, tmp_path, {"default": FLAG_TEMPLATE, "alt": "ALT:" + FLAG_TEMPLATE})
    lm = hf_model(folder)
    task = tasks["acbench_teval_instruct"]
    doc = first_doc(task)
    with run_args.recorded(chat_template="alt"):
        named = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)
    default = task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)
    assert named.startswith("ALT:") and not default.startswith("ALT:")
    with run_args.recorded(chat_template="missing"), pytest.raises(ValueError, match="not available"):
        task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lm.apply_chat_template)


# ---- native function calling: the server's tool_calls reach the scorer ------------------------
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
                       max_leaves=8)
_calls = st.lists(st.tuples(_names, st.dictionaries(_names, _values, max_size=4)), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(calls=_calls, content=st.none() | st.text(max_size=30))
@example(calls=[("A", {"A": "[TOOL_CALLS]"})], content=None)  # a format marker inside an argument (CI)
@example(calls=[("f", {"x": "<tool_call>"})], content=None)
def test_server_tool_calls_decode_to_the_calls_sent(calls, content):
    from lm_eval_acbench.metrics.tool_calls import parse_tool_calls
    from lm_eval_acbench.tool_chat import ToolCallingChatCompletion

    lm = ToolCallingChatCompletion.__new__(ToolCallingChatCompletion)  # parsing needs no connection
    lm.think_end_token = None
    reply = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": content,
        "tool_calls": [{"id": f"c{i}", "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)}}
                       for i, (name, args) in enumerate(calls)]}}]}
    (text,) = lm.parse_generations(reply)
    parsed = parse_tool_calls(text)
    assert parsed.format == "json" and parsed.calls == [{name: args} for name, args in calls]


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=60))
def test_replies_without_tool_calls_are_their_text(text):
    from lm_eval_acbench.tool_chat import ToolCallingChatCompletion

    lm = ToolCallingChatCompletion.__new__(ToolCallingChatCompletion)
    lm.think_end_token = None
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    assert lm.parse_generations(reply) == [text]


def test_unparseable_arguments_stay_text_and_score_zero_with_a_reason():
    from lm_eval_acbench.tasks.function_call import score_output
    from lm_eval_acbench.tool_chat import calls_text

    text = calls_text([{"type": "function", "function": {"name": "f", "arguments": "{not json"}}])
    scored = score_output(text, [{"name": "f", "parameters": {"type": "dict", "properties": {}}}],
                          [{"f": {}}], "simple")
    assert scored["accuracy"] == 0.0 and scored["verdict"]["reason"]


@settings(max_examples=60, deadline=None)
@given(calls=_calls, prefix=st.text(alphabet=st.characters(blacklist_characters="<"), max_size=20))
def test_test_server_parses_tool_calls_like_vllm_hermes(calls, prefix):
    from openai_server import hermes_tool_calls

    blocks = "".join(f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>"
                     for n, a in calls)
    parsed, content = hermes_tool_calls(prefix + blocks)
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parsed] == calls
    assert content == (prefix or None)
    assert hermes_tool_calls(prefix) == ([], prefix)  # no tag: plain text
    assert hermes_tool_calls(prefix + "<tool_call>{broken")[0] == []  # undecodable: no calls at all


# ---- episodes on hf: one batch-size detection, role fallbacks ---------------------------------
def episode_requests(n: int, max_steps: int):
    from lm_eval.api.instance import Instance

    from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD
    from lm_eval_acbench.tasks.realworld import load_episodes

    records = load_episodes("tool-query", {"data_source": "sample"})[:n]
    loop = json.dumps({"max_steps": max_steps, "max_invalid": 0})
    return [Instance("generate_until", {EPISODE_FIELD: json.dumps(r), LOOP_FIELD: loop},
                     ("label", {"until": ["\n\n"], "max_gen_toks": 4, "do_sample": False}), 0,
                     ("acbench_realworld_tool_query", i, 1))
            for i, r in enumerate(records)]


def test_batch_size_auto_is_detected_once_for_all_episode_steps(tiny_model_dir):
    from lm_eval_acbench.episodes import _episode_aware

    lm = hf_model(tiny_model_dir, batch_size="auto", max_batch_size=2)
    detect, calls = lm._detect_batch_size, []
    lm._detect_batch_size = lambda *a, **k: calls.append(a) or detect(*a, **k)
    with _episode_aware(lm, apply_chat_template=False, system_instruction=None):
        out = lm.generate_until(episode_requests(2, max_steps=3))
    steps = max(len(json.loads(o)["trajectory"]) for o in out)
    assert steps == 3  # three batched model calls ...
    assert len(calls) == 1  # ... and one detection (lm-eval's HFLM alone detects at every call)
    assert lm.batch_size_per_gpu == "auto"  # the setting is the user's again afterwards


NO_SYSTEM_TEMPLATE = (  # Gemma-2 style: the system role is an error
    "{%- for m in messages %}{%- if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
    "{%- endif %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<start_of_turn>model\n{%- endif %}"
)


def test_episode_prompts_keep_the_instructions_when_the_template_rejects_system(tiny_model_dir, tmp_path):
    from lm_eval_acbench.episodes import _episode_aware, build_messages

    lm = hf_model(model_copy(tiny_model_dir, tmp_path, NO_SYSTEM_TEMPLATE))
    with _episode_aware(lm, apply_chat_template=True, system_instruction="Be brief."):
        (out,) = lm.generate_until(episode_requests(1, max_steps=1))
    transcript = json.loads(out)
    prompt = transcript["trajectory"][0]["prompt"]
    instructions = transcript["instructions"]
    assert instructions and instructions.strip() in prompt and "Be brief." in prompt
    assert "<start_of_turn>system" not in prompt and prompt.rstrip().endswith("<start_of_turn>model")
    # what lm-eval's own fallback would have sent: the system message, instructions and all, gone
    dropped = lm.apply_chat_template(build_messages(instructions, "goal", [], "obs", 5))
    assert instructions.strip() not in dropped


# ---- budgets follow --gen_kwargs ------------------------------------------------------------
def test_niah_lengths_leave_room_for_the_requested_generation():
    from lm_eval_acbench.tasks import niah

    metadata = {"max_length": 2000, "niah_context_lengths": [500, 1500], "niah_depth_percents": [50]}
    assert niah.grid_settings(metadata, None)[0] == [500, 1500]
    with run_args.recorded(gen_kwargs="max_gen_toks=600,temperature=0"):
        assert niah.grid_settings(metadata, None)[0] == [500]  # 1500 + 600 + 64 > 2000


def test_longbench_truncates_in_the_middle_to_leave_max_gen_toks(tiny_model_dir):
    from lm_eval_acbench.tasks import longbench

    def lengths(**gen):
        with run_args.recorded(**gen):
            split = longbench.load(longbench_dataset="qasper", data_source="sample",
                                   pretrained=str(tiny_model_dir), max_length=700)
        return [(doc["prompt_tokens"], doc["prompt_tokens_kept"]) for doc in split["test"]]

    default = lengths()  # qasper's own 128: 700 - 128 - 64 = 508 prompt tokens
    asked = lengths(gen_kwargs={"max_gen_toks": 400})  # 700 - 400 - 64 = 236
    assert any(before > 508 for before, _ in default)
    assert all(after <= 508 for _, after in default) and all(after <= 236 for _, after in asked)
    assert max(after for _, after in asked) == 236


# ---- vllm: what can be checked without a GPU ------------------------------------------------
def test_vllm_template_settings_reach_the_rendering(tasks, tiny_model_dir, tmp_path):
    """lm-eval's VLLM renders with its resolved ``hf_chat_template`` and ``enable_thinking``
    (vllm_causallms.py, apply_chat_template); our rendering passes the same. The attributes are
    set on an HFLM here, as VLLM would hold them (vLLM itself cannot run on this CPU)."""
    from lm_eval_acbench.prompting import template_kwargs

    folder = model_copy(tiny_model_dir, tmp_path, FLAG_TEMPLATE)
    lm = hf_model(folder)
    lm.hf_chat_template, lm.enable_thinking = "VLLM:" + FLAG_TEMPLATE, False
    assert template_kwargs(lm) == {"chat_template": "VLLM:" + FLAG_TEMPLATE, "enable_thinking": False}
    task = tasks["acbench_teval_instruct"]
    prompt = task.fewshot_context(first_doc(task), 0, apply_chat_template=True,
                                  chat_template=lm.apply_chat_template)
    assert prompt.startswith("VLLM:")


def test_native_name_restoring_survives_deep_or_huge_replies():
    from lm_eval_acbench.tasks.function_call_native import decode_tool_calls, restore_names

    deep = "[" * 20_000 + "]" * 20_000  # json.loads raises RecursionError on it
    assert restore_names(deep, {"a_b": "a.b"}) == deep
    assert decode_tool_calls(deep).calls is None and decode_tool_calls(deep).error
    assert restore_names('[{"name": "a_b", "arguments": {}}]', {"a_b": "a.b"}) == \
        '[{"name": "a.b", "arguments": {}}]'

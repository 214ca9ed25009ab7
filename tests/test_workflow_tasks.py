"""acbench_workflow tasks: data sources, prompt shape, batched scoring, and real WorfBench data.

Embedding-based checks use the small MiniLM stand-in (fast); the reference-rule checks on real
golds use exact-text similarity so that every expected number follows from the rules by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO_ROOT, shared_data_path

from lm_eval_acbench import data, embeddings
from lm_eval_acbench.metrics import workflow as W
from lm_eval_acbench.tasks import workflow as T

MINILM = embeddings.STAND_IN_MODEL
YAML_DIR = REPO_ROOT / "task_yamls" / "workflow"
REAL_SIZES = {"wikihow": 262, "toolbench": 114, "toolalpaca": 93, "lumos": 489, "alfworld": 312,
              "webshop": 133, "os": 20}


def exact(left, right):
    table = [[1.0 if a == b else 0.0 for b in right] for a in left]
    return np.array(table, dtype=float).reshape(len(left), len(right))


def rows(split) -> list[dict]:
    return [dict(row) for row in split]


# --- data and prompt --------------------------------------------------------------------------


@pytest.mark.parametrize("subset", T.SUBSETS)
def test_sample_set_loads_with_demos_split_off(subset):
    dataset = T.load_worfbench(subset=subset, data_source="sample")
    demos, scored = rows(dataset["demo"]), rows(dataset["test"])
    assert len(demos) == T.NUM_DEMOS and len(scored) >= 2
    assert {d["id"] for d in demos}.isdisjoint(d["id"] for d in scored)
    for doc in demos + scored:
        assert doc[data.SOURCE_FIELD] == "sample:worfbench"
        assert W.parse_reference(T.doc_to_target(doc)) is not None
        assert doc["system_prompt"] == T.system_message(doc).rstrip() + "\n\n"


def test_unknown_subset_is_a_clear_error():
    with pytest.raises(data.DataUnavailable, match="unknown WorfBench subset"):
        T.load_worfbench(subset="nope", data_source="sample")


def test_prompt_pieces():
    dataset = T.load_worfbench(subset="os", data_source="sample")
    doc = rows(dataset["test"])[0]
    user = json.loads(doc["conversations"])[1]["content"]
    assert T.doc_to_text(doc) == "Now it's your turn.\n" + user
    assert T.demo_to_text(rows(dataset["demo"])[0]).startswith("Count the number")


def test_yaml_settings():
    template = (YAML_DIR / "_workflow_template_yaml").read_text()
    settings = yaml.safe_load("\n".join(line for line in template.splitlines() if "!function" not in line))
    assert settings["generation_kwargs"]["until"] == []  # the end of the model's turn ends generation
    assert settings["num_fewshot"] == 2 and settings["fewshot_config"]["split"] == "demo"
    assert [m["metric"] for m in settings["metric_list"]] == list(T.METRICS)
    group = yaml.safe_load((YAML_DIR / "_acbench_workflow.yaml").read_text())
    assert group["task"] == [f"acbench_workflow_{s}" for s in T.GROUP_SUBSETS]
    assert all(m["weight_by_size"] for m in group["aggregate_metric_list"])
    for subset in T.SUBSETS:
        assert f"subset: {subset}" in (YAML_DIR / f"acbench_workflow_{subset}.yaml").read_text()


@pytest.fixture(scope="module")
def os_task():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(YAML_DIR), include_defaults=False, metadata={"data_source": "sample"}
    )
    loaded = manager.load(["acbench_workflow_os"])
    task = loaded["tasks"]["acbench_workflow_os"]
    task.set_fewshot_seed(0)
    return task


def test_plain_prompt_has_system_demos_and_turn(os_task):
    doc = rows(os_task.test_docs())[0]
    demos = rows(os_task.dataset["demo"])
    prompt = os_task.fewshot_context(doc, 2)
    system = T.system_message(doc)
    assert prompt.startswith(system + "\n\n" + T.demo_to_text(demos[0]) + "\n" + T.doc_to_target(demos[0]))
    assert prompt.index(T.doc_to_target(demos[1])) < prompt.index("Now it's your turn.\n")
    assert prompt.endswith("Now it's your turn.\n" + json.loads(doc["conversations"])[1]["content"])
    assert T.doc_to_target(doc) not in prompt


def test_chat_prompt_makes_demos_real_turns(os_task):
    doc = rows(os_task.test_docs())[0]
    seen = []

    def template(messages, add_generation_prompt=True):
        seen.append(messages)
        return json.dumps(messages)

    os_task.fewshot_context(
        doc, 2, apply_chat_template=True, fewshot_as_multiturn=True, chat_template=template
    )
    roles = [m["role"] for m in seen[0]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert seen[0][2]["content"] == T.doc_to_target(rows(os_task.dataset["demo"])[0])
    assert seen[0][-1]["content"].startswith("Now it's your turn.\n")


# --- scoring through the filter hook ------------------------------------------------------------


def test_score_responses_batches_and_caches(monkeypatch, tmp_path):
    monkeypatch.setenv(embeddings.VECTOR_STORE_ENV, str(tmp_path))
    dataset = T.load_worfbench(subset="alfworld", data_source="sample", embedding_model=MINILM)
    docs = rows(dataset["test"])[1:]  # 7 distinct nodes (the other has 8 with repeats: quirks apply)
    gold = T.doc_to_target(docs[0])
    calls = []
    real_embed = embeddings.embed

    def counting_embed(texts, model=None, batch_size=embeddings.BATCH_SIZE):
        calls.append(list(texts))
        return real_embed(texts, model=model, batch_size=batch_size)

    monkeypatch.setattr(embeddings, "embed", counting_embed)
    T._vector_cache.clear()
    resps = [[gold], ["Node:\n1.go to fridge\nEdge: (START,1) (1,END)"], [[]], ["Sure! " * 50]]
    results = T.score_responses(resps, [docs[0]] * 4)
    embedded = [text for call in calls for text in call]
    assert calls[0] == T.gold_node_texts([gold]) and len(embedded) == len(set(embedded))
    assert len(calls) <= 2  # the gold rows (kept on disk), then every other distinct text at once
    assert list(tmp_path.rglob("*.npz"))
    assert results[0]["node_f1_fixed"] == pytest.approx(1.0)
    assert results[0]["graph_f1_fixed"] == pytest.approx(1.0)
    assert results[0]["node_f1"] == pytest.approx(1.0) and results[0]["parse_rate"] == 1.0
    assert results[1]["node_f1"] == 0.0 and "space after the separator" in results[1]["reason"]
    assert results[1]["node_f1_fixed"] > 0.0  # the quirk-free parser reads "1.go to fridge"
    assert results[2]["parse_rate"] == 0.0 and results[3]["node_f1"] == 0.0
    assert {r["embedding_model"] for r in results} == {MINILM}
    seen = len(calls)
    T.score_responses([[gold]], [docs[0]])
    assert len(calls) == seen  # every text already embedded in this process
    T._vector_cache.clear()  # a new run: the gold rows come from disk, the same floats
    again = T.score_responses([[gold], resps[1]], [docs[0]] * 2)
    assert len(calls) <= seen + 1 and all(T.gold_node_texts([gold])[0] not in call for call in calls[seen:])
    assert again == results[:2]
    assert T.process_results(docs[0], [results[0]])["node_f1"] == pytest.approx(1.0)
    assert set(T.process_results(docs[0], [results[1]])) == set(T.METRICS)


# --- real WorfBench data (skipped when ../shared/data is absent) --------------------------------


@pytest.fixture(scope="module")
def real_dir() -> Path:
    return shared_data_path("worfbench", "wikihow", "graph_eval.json").parent.parent


def test_real_local_source_and_sizes(real_dir):
    for subset, size in REAL_SIZES.items():
        assert len(T.read_subset(real_dir, subset)) == size
    dataset = T.load_worfbench(subset="os", data_dir=str(real_dir), data_source="local")
    first_two = [r["id"] for r in T.read_subset(real_dir, "os")[:2]]
    assert len(dataset["test"]) == 18 and [d["id"] for d in rows(dataset["demo"])] == first_two
    assert rows(dataset["test"])[0][data.SOURCE_FIELD] == f"local:{real_dir}"


def test_real_golds_score_one_against_themselves_quirk_free(real_dir):
    """All 1,423 golds of the seven subsets: quirk-free node and graph F1 are exactly 1.0."""
    for subset in REAL_SIZES:
        for record in T.read_subset(real_dir, subset):
            gold = W.parse_lenient(record["conversations"][-1]["content"])
            assert W.fixed_node_scores(gold, gold, exact)["f1"] == 1.0, record["id"]
            assert W.fixed_graph_scores(gold, gold, exact)["f1"] == 1.0, record["id"]


def test_real_golds_with_embeddings_quirk_free(real_dir):
    golds = [r["conversations"][-1]["content"] for s in REAL_SIZES for r in T.read_subset(real_dir, s)[:6]]
    encode, _ = T.cached_encoder(MINILM)
    results = W.score_batch(golds, golds, encode)
    assert [r["node_f1_fixed"] for r in results] == pytest.approx([1.0] * len(golds))
    assert [r["graph_f1_fixed"] for r in results] == pytest.approx([1.0] * len(golds))


FOUR_PARALLEL = sorted([(0, i) for i in range(1, 5)] + [(i, 5) for i in range(1, 5)])


def _real_gold(real_dir, subset, predicate):
    for record in T.read_subset(real_dir, subset):
        text = record["conversations"][-1]["content"]
        graph = W.parse_reference(text)
        if graph is not None and predicate(text, graph):
            return text, graph
    pytest.skip(f"no {subset} gold of the wanted shape")


def _is_chain(graph):
    n = len(graph.inner)
    return sorted(graph.edges) == sorted([(i, i + 1) for i in range(n + 1)]) and len(set(graph.inner)) == n


def test_real_hand_made_predictions_follow_reference_rules(real_dir):
    # A chain gold with 8 real nodes: raw list with START/END -> itself scores 2*8/(2*8+2).
    text, graph = _real_gold(real_dir, "alfworld", lambda t, g: len(g.inner) == 8 and _is_chain(g))
    node = W.reference_node_scores(graph, graph, exact)
    assert node["f1"] == pytest.approx(8 / 9)
    # Same nodes, written "1.text" without a space: the reference parser finds no nodes -> 0.
    no_space = text.replace(": ", ".", len(graph.inner))
    assert W.reference_node_scores(W.parse_reference(no_space), graph, exact)["f1"] == 0.0
    # Perfect nodes but no edge list: unparseable -> 0.
    no_edges = text.split("Edge")[0]
    assert W.parse_reference(no_edges) is None

    # A short chain gold (3-7 nodes): first and last node swapped -> LIS n-2 of n.
    text, graph = _real_gold(real_dir, "webshop", lambda t, g: 4 <= len(g.inner) <= 7 and _is_chain(g))
    nodes = list(graph.inner)
    nodes[0], nodes[-1] = nodes[-1], nodes[0]
    n = len(nodes)
    edges = "(START,1) " + " ".join(f"({i},{i + 1})" for i in range(1, n)) + f" ({n},END)"
    lines = "".join(f"{i}: {t}\n" for i, t in enumerate(nodes, 1))
    pred = W.parse_reference("Node:\n" + lines + "Edge: " + edges)
    assert W.reference_node_scores(pred, graph, exact)["f1"] == pytest.approx((n - 2) / n)
    # Only the first node predicted: P = 1, R = 1/n.
    one = W.parse_reference(f"Node:\n1: {graph.inner[0]}\nEdge: (START,1) (1,END)")
    assert W.reference_node_scores(one, graph, exact)["f1"] == pytest.approx(2 * (1 / n) / (1 + 1 / n))

    # A gold with 4 parallel nodes under START: at most 20 of 24 orders, its own is not among them.
    text, graph = _real_gold(
        real_dir, "seal_tools" if (real_dir / "seal_tools").is_dir() else "toolbench",
        lambda t, g: len(g.inner) == 4 and sorted(g.edges) == FOUR_PARALLEL,
    )
    assert W.reference_node_scores(graph, graph, exact)["f1"] == pytest.approx(0.75)

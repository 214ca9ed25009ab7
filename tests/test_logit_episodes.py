"""Multi-turn episodes through acbench-hf: every step of every episode is logged under its own key,
and the analysis pairs base and perturbed steps by key (tiny random Llama, in-process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _perturbed_copy(src, dst, scale=2e-3, seed=0):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + scale * torch.randn(p.shape, generator=gen))
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dst))
    return dst


def _run_episodes(model_dir, log_dir, reference=None):
    from lm_eval.api.instance import Instance

    from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, _episode_aware
    from lm_eval_acbench.models import LogitLoggingHFLM
    from lm_eval_acbench.tasks.realworld import load_episodes

    records = load_episodes("tool-query", {"data_source": "sample"})[:2]
    loop = json.dumps({"max_steps": 3, "max_invalid": 3})
    task = "acbench_realworld_tool_query"
    requests = [Instance("generate_until", {EPISODE_FIELD: json.dumps(r), LOOP_FIELD: loop},
                         ("label", {"max_gen_toks": 6}), 0, (task, d, 2)) for d, r in enumerate(records)]
    requests = [requests[0], requests[1], requests[1]]  # doc 1 twice: lm-eval's repeats
    extra = {"logits_reference": str(reference)} if reference else {}
    lm = LogitLoggingHFLM(pretrained=str(model_dir), device="cpu", batch_size=4, dtype="float32",
                          logits_dir=str(log_dir), logits_top_k=8, logits_max_positions=6,
                          logits_max_generated=4, **extra)
    with _episode_aware(lm, apply_chat_template=True, system_instruction=None):
        out = lm.generate_until(requests)
    return lm, requests, [json.loads(o) for o in out]


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("episode-logits")
    comp_dir = _perturbed_copy(tiny_model_dir, root / "perturbed")
    base = _run_episodes(tiny_model_dir, root / "log-base")
    comp = _run_episodes(comp_dir, root / "log-perturbed", reference=root / "log-base")
    return root, base, comp


def _records(folder):
    from lm_eval_acbench.analysis.logio import iter_records

    return list(iter_records(folder))


def test_every_step_of_every_episode_has_its_own_key(runs):
    root, (lm, requests, transcripts), _ = runs
    records = _records(root / "log-base")
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys))
    want = {f"acbench_realworld_tool_query|{req.doc_id}|generate_until|0|episode{rep}|step{s}"
            for req, rep, t in zip(requests, (0, 0, 1), transcripts) for s in range(1, len(t["trajectory"]) + 1)}
    assert set(keys) == want and len(want) == sum(len(t["trajectory"]) for t in transcripts) >= 6
    tail = lm._acb_template_tail()
    assert tail, "the tiny model's chat template has a generation prompt"
    by_key = {r["key"]: r for r in records}
    for req, rep, t in zip(requests, (0, 0, 1), transcripts):
        for s, step in enumerate(t["trajectory"], 1):
            rec = by_key[f"acbench_realworld_tool_query|{req.doc_id}|generate_until|0|episode{rep}|step{s}"]
            # the record of step s is the prompt the model saw at step s of this episode
            ids = lm.tok_encode(step["prompt"], add_special_tokens=False)
            assert rec["input_ids"].tolist()[-len(ids):] == ids
            n = len(rec["input_ids"])
            content_end = n - len(tail)
            gen = rec["generated_ids"].tolist()
            # the content window ends before the template's generation prompt, then come the
            # positions that chose the generated tokens
            want_pos = list(range(content_end - 6, content_end)) + list(range(n - 1, n - 1 + min(len(gen), 4)))
            assert rec["positions"].tolist() == want_pos


def test_analysis_pairs_steps_by_key_and_covers_every_position(runs, tmp_path):
    from lm_eval_acbench.analysis import analyze_runs

    root, _, (_, _, comp_transcripts) = runs
    base = {r["key"]: r for r in _records(root / "log-base")}
    comp = {r["key"]: r for r in _records(root / "log-perturbed")}
    same = {k for k in base.keys() & comp.keys() if base[k]["prompt_hash"] == comp[k]["prompt_hash"]}
    assert any(k.endswith("step2") for k in same)  # later steps pair too, not only the first prompt
    out = analyze_runs(root / "log-base", {"perturbed": root / "log-perturbed"}, tmp_path, ks=(3,),
                       allow_partial=True)
    summary = json.loads((out / "summary.json").read_text())["pairs"]["perturbed"]
    assert summary["overlap"]["n_common"] == len(same)
    assert summary["sequences_logged_at_base_topk"] == len(same)
    assert summary["rank_correlation"]["3"]["not_covered_share"] == 0
    import pandas as pd

    per_seq = pd.read_csv(out / "per_sequence.csv")
    assert set(per_seq["key"]) == same
    for key in same:  # positions compared: the prompt window, and generated ones while both agree
        b, c = base[key], comp[key]
        g = 0
        while g < min(len(b["generated_ids"]), len(c["generated_ids"])) and b["generated_ids"][g] == c["generated_ids"][g]:
            g += 1
        n = len(b["input_ids"])
        want = [p for p in b["positions"] if p < n + g and p in set(c["positions"].tolist())]
        assert int(per_seq.loc[per_seq["key"] == key, "n_positions"].iloc[0]) == len(want)


def test_reference_logits_equal_the_models_full_logits(runs, tiny_model_dir):
    """ref_logits of the perturbed run = its full logits at the base's top-K ids (brute force)."""
    from transformers import AutoModelForCausalLM

    root, _, _ = runs
    base = {r["key"]: r for r in _records(root / "log-base")}
    model = AutoModelForCausalLM.from_pretrained(str(root / "perturbed"), dtype=torch.float32).eval()
    checked = 0
    for rec in _records(root / "log-perturbed")[:6]:
        ref = base.get(rec["key"])
        if ref is None or ref["prompt_hash"] != rec["prompt_hash"]:
            assert (rec.get("ref_ids", np.full((1, 1), -1)) == -1).all()
            continue
        ids = torch.tensor([rec["input_ids"].tolist() + rec["generated_ids"].tolist()[:-1]])
        with torch.no_grad():
            full = model(ids).logits[0].numpy()
        for row, p in enumerate(rec["positions"]):
            if (rec["ref_ids"][row] == -1).all():
                continue
            j = int(np.nonzero(ref["positions"] == p)[0][0])
            assert rec["ref_ids"][row].tolist() == ref["topk_ids"][j].tolist()
            np.testing.assert_allclose(rec["ref_logits"][row], full[p, ref["topk_ids"][j]], rtol=1e-4, atol=1e-4)
            checked += 1
    assert checked > 0


@pytest.mark.slow  # one compression and four lm-eval runs of the tiny model with episodes
def test_a_study_with_real_world_cells_analyses_without_a_mismatch(tiny_model_dir, tmp_path):
    """The demo's shape in miniature: logits on, real-world episodes, base vs RTN, analysis."""
    from lm_eval_acbench.study.config import load_study
    from lm_eval_acbench.study.runner import run_study

    spec = {
        "name": "mini-realworld", "models": [{"name": "tiny", "path": str(tiny_model_dir)}],
        "recipes": ["rtn_w4a16"], "tasks": ["acbench_realworld_tool_query", "acbench_realworld_pddl"],
        "limit": 2, "out": str(tmp_path / "out"), "backend": {"device": "cpu", "batch_size": 4},
        "apply_chat_template": True, "generation": {"max_gen_toks": 8, "do_sample": False},
        "metadata": {"max_steps": 3, "max_invalid": 3}, "logits": {"enabled": True},
        "data": {"source": "sample"},
    }
    study = load_study(spec)
    summary = run_study(study, progress=False)
    failed = {c: r.get("error") for c, r in summary.results.items() if r["status"] != "done"}
    assert not failed
    out = tmp_path / "out"
    analysis = json.loads((out / "analysis/tiny/summary.json").read_text())
    pair = analysis["pairs"]["rtn_w4a16"]
    assert pair["sequences"] >= 4 and pair["overlap"]["n_common"] == pair["sequences"]
    # the RTN cells logged against the base's logs: top-k statistics cover every position
    for task in ("acbench_realworld_tool_query", "acbench_realworld_pddl"):
        done = json.loads((out / "cells/eval/tiny/rtn_w4a16" / task / "done.json").read_text())
        assert done["result"]["logits_reference"] == str(out / "logits/tiny/base" / task)
        assert json.loads((out / "logits/tiny/rtn_w4a16" / task / "meta.json").read_text())["reference"] == \
            str(out / "logits/tiny/base" / task)
    assert pair["sequences_logged_at_base_topk"] == pair["sequences"]
    for k, stats in pair["rank_correlation"].items():
        assert stats["positions"] > 0 and stats["not_covered_share"] == 0, k
    logs = json.loads((tmp_path / "out" / "analysis/tiny/acbench_logs.json").read_text())
    # every step of every episode was logged under its own key (2 tasks x 2 episodes x up to 3 steps)
    assert 8 <= logs["base"]["records"] <= 12
    # the demo's own check: each step record is the prompt and answer of its episode's step
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "check_episode_logits.py"
    spec_ = importlib.util.spec_from_file_location("check_episode_logits", script)
    checker = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(checker)
    assert checker.main([str(out)]) == 0
    rtn = logs["rtn_w4a16"]
    assert rtn["same_prompt_as_base"] == pair["overlap"]["n_common"]
    assert rtn["other_prompt"] == pair["overlap"]["n_different_prompt"]
    assert rtn["not_in_base"] == pair["overlap"]["n_only_compressed"]

    # Resuming with a setting the episodes depend on reruns the evaluation cells: each cell's log
    # then holds this run's steps only, nothing appended to or left over from the first run.
    study = load_study(spec, {"metadata.max_steps": 2})
    again = run_study(study, progress=False)
    assert {c: r["status"] for c, r in again.results.items() if c.startswith("eval/")} == {
        f"eval/tiny/{v}/{t}": "done" for v in ("base", "rtn_w4a16")
        for t in ("acbench_realworld_tool_query", "acbench_realworld_pddl")}
    from lm_eval_acbench.analysis.logio import iter_records

    for variant in ("base", "rtn_w4a16"):
        for task in ("acbench_realworld_tool_query", "acbench_realworld_pddl"):
            keys = [r["key"] for r in iter_records(out / "logits/tiny" / variant / task)]
            steps = 0
            for samples in (out / "evals/tiny" / variant / task).glob("samples_*.jsonl"):
                for line in samples.read_text().splitlines():
                    steps += len(json.loads(json.loads(line)["resps"][0][0])["trajectory"])
            assert len(keys) == len(set(keys)) == steps and not any(k.endswith("step3") for k in keys)
    merged = json.loads((out / "analysis/tiny/acbench_logs.json").read_text())
    assert merged["base"]["records"] <= 8 and merged["rtn_w4a16"]["records"] <= 8

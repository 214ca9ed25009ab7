"""End to end on SmolLM2: base and a weight-rounded copy through `lm_eval --model acbench-hf`,
then `acbench analyze` and `acbench report` (slow: three lm_eval runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO_ROOT, run_lm_eval

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "analysis_tasks"
TASKS = "analysis_fixture_gen,analysis_fixture_mc"


def round_weights(src: Path, dst: Path, levels: int = 31) -> Path:
    """A 'compressed' model: every decoder Linear weight rounded per output row to ``levels``
    symmetric levels (fake 5-bit, per row), embeddings and norms untouched."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    half = (levels - 1) // 2
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and "lm_head" not in name:
                w = module.weight
                scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / half
                w.copy_(torch.round(w / scale) * scale)
    model.save_pretrained(str(dst))
    for f in Path(src).iterdir():
        if f.is_file() and ("token" in f.name or f.name in ("vocab.json", "merges.txt", "special_tokens_map.json")):
            shutil.copy(f, dst / f.name)
    return dst


def _tasks_dir(tmp: Path) -> Path:
    out = tmp / "tasks"
    out.mkdir()
    for f in FIXTURE.iterdir():
        text = f.read_text().replace("DATA_DIR", str(FIXTURE))
        (out / f.name).write_text(text)
    return out


def _lm_eval(model_type: str, model_dir: Path, tasks_dir: Path, cwd: Path, extra: str = ""):
    cwd.mkdir(parents=True, exist_ok=True)
    args = ["--model", model_type, "--model_args", f"pretrained={model_dir},dtype=float32{extra}",
            "--tasks", TASKS, "--include_path", str(tasks_dir), "--device", "cpu", "--batch_size", "2"]
    return run_lm_eval(args, cwd)


@pytest.mark.slow
def test_base_vs_rounded_smollm2(smollm2_dir, tmp_path):
    from lm_eval_acbench.analysis.logio import iter_records
    from lm_eval_acbench.cli import main

    tasks = _tasks_dir(tmp_path)
    comp_dir = round_weights(smollm2_dir, tmp_path / "rounded")
    logs = {"base": tmp_path / "logs_base", "rounded": tmp_path / "logs_rounded"}
    plain = _lm_eval("hf", smollm2_dir, tasks, tmp_path / "plain")
    base = _lm_eval("acbench-hf", smollm2_dir, tasks, tmp_path / "base",
                    f",logits_dir={logs['base']},logits_max_positions=24")
    comp = _lm_eval("acbench-hf", comp_dir, tasks, tmp_path / "rounded",
                    f",logits_dir={logs['rounded']},logits_max_positions=24")

    # acbench-hf == hf: same responses, same metrics
    assert base["results"]["results"] == plain["results"]["results"]
    for task in ("analysis_fixture_gen", "analysis_fixture_mc"):
        assert [s["resps"] for s in base["samples"][task]] == [s["resps"] for s in plain["samples"][task]]
    records = list(iter_records(logs["base"]))
    # 4 generations + 3 docs x 3 choices loglikelihoods
    assert len(records) == 4 + 9
    gen = [r for r in records if r["key"].split("|")[2] == "generate_until"]
    assert all(len(r["generated_ids"]) >= 1 for r in gen)
    # a prompt window of at most 24 positions, plus (generate_until) the generated tokens' positions
    assert all(1 <= len(r["positions"]) <= 24 + len(r["generated_ids"]) for r in records)
    assert all(r["positions"][-1] == len(r["input_ids"]) - 2 + len(r["generated_ids"]) for r in gen)

    an = tmp_path / "analysis"
    assert main(["analyze", f"base={logs['base']}", f"w4_rounded={logs['rounded']}", "--out", str(an)]) == 0
    summary = json.loads((an / "summary.json").read_text())
    pair = summary["pairs"]["w4_rounded"]
    assert pair["sequences"] == 13 and pair["overlap"]["n_only_base"] == 0
    tau3 = pair["rank_correlation"]["3"]["tau_mean_over_positions"]
    assert -1 <= tau3 <= 1 and tau3 < 1  # rounding changes the ranking somewhere
    share = [pair["rank_correlation"][k]["not_covered_share"] for k in ("3", "10", "20")]
    assert share[0] <= share[1] <= share[2] and share[0] < 0.5  # nested top-k sets
    assert pair["energy"]["wasserstein1"] > 0 and 0 < pair["energy"]["ks"] <= 1
    assert pair["erank"]["erank_base"] > 1

    rep = tmp_path / "report"
    assert main(["report", f"base={tmp_path / 'base' / 'lm_eval_out'}",
                 f"w4_rounded={tmp_path / 'rounded' / 'lm_eval_out'}", "--out", str(rep),
                 "--analysis", str(an)]) == 0
    md = (rep / "report.md").read_text()
    assert "analysis_fixture_gen" in md and "analysis_fixture_mc" in md and "w4_rounded drop %" in md
    assert "ran on acbench's sample set (sample:analysis_fixture)" in md
    for png in ("paired_drops.png", "analysis_erank.png", "analysis_rankcorr.png",
                "analysis_energy_position.png", "analysis_energy.png"):
        assert (rep / png).stat().st_size > 1000
    # the answer's drop plot first, then the four analysis plots
    assert (rep / "report.html").read_text().count("data:image/png;base64,") == 5
    assert (rep / "scores.csv").is_file() and (rep / "analysis.csv").is_file()

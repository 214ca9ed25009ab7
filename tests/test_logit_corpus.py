"""``acbench logits`` on a corpus and ``acbench analyze`` on its logs (tiny model, in-process CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lm_eval_acbench.cli import main


def test_corpus_logs_are_seeded_and_analyzable(tiny_model_dir, tmp_path, capsys):
    args = ["--num-seqs", "6", "--seq-len", "12", "--top-k", "24", "--temperatures", "1,0.5"]
    assert main(["logits", str(tiny_model_dir), "--corpus", "wikitext2", "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["logits", str(tiny_model_dir), "--corpus", "shipped", "--out", str(tmp_path / "b"), *args]) == 0
    from lm_eval_acbench.analysis.logio import iter_records, read_meta

    meta = read_meta(tmp_path / "a")
    assert "offline fallback" in meta["corpus"]  # the hub is off in tests
    ra = list(iter_records(tmp_path / "a"))
    rb = list(iter_records(tmp_path / "b"))
    assert len(ra) == 6 and all(len(r["input_ids"]) == 12 for r in ra)
    assert [r["prompt_hash"] for r in ra] == [r["prompt_hash"] for r in rb]  # same seeded windows

    assert main(["analyze", str(tmp_path / "a"), f"same={tmp_path / 'b'}", "--out", str(tmp_path / "an"),
                 "--k", "3,10", "--temperature", "0.5"]) == 0
    summary = json.loads((tmp_path / "an" / "summary.json").read_text())
    pair = summary["pairs"]["same"]
    assert pair["erank"]["diff_erank"] == 0 and pair["energy"]["ks"] == 0
    assert pair["rank_correlation"]["10"]["tau_mean_over_positions"] == pytest.approx(1.0)
    assert summary["settings"]["temperature"] == 0.5

    # another seed picks other windows: the prompts under the same keys differ -> refused
    assert main(["logits", str(tiny_model_dir), "--corpus", "shipped", "--out", str(tmp_path / "c"),
                 *args, "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "an2")]) == 1
    err = capsys.readouterr().err
    assert "different prompts" in err or "keys only in" in err


def test_corpus_file_and_bad_inputs(tiny_model_dir, tmp_path, capsys):
    text = tmp_path / "c.txt"
    text.write_text("\n\n".join(f"Paragraph {i} says the red block is on the blue block." for i in range(20)))
    assert main(["logits", str(tiny_model_dir), "--corpus", str(text), "--out", str(tmp_path / "f"),
                 "--num-seqs", "3", "--seq-len", "8"]) == 0
    from lm_eval_acbench.analysis.logio import read_meta

    assert read_meta(tmp_path / "f")["corpus"] == "file:c.txt"
    assert main(["logits", str(tiny_model_dir), "--corpus", str(tmp_path / "missing.txt"),
                 "--out", str(tmp_path / "g")]) == 1
    assert "corpus file not found" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "f"), str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 1
    assert "not a logit log" in capsys.readouterr().err


def test_window_choice_is_deterministic():
    from lm_eval_acbench.commands.logits import choose_windows

    a = choose_windows(list(range(1000)), 10, 32, seed=0)
    assert a == choose_windows(list(range(1000)), 10, 32, seed=0)
    assert a != choose_windows(list(range(1000)), 10, 32, seed=1)
    assert all(s % 32 == 0 for s in a) and len(set(a)) == 10
    assert len(choose_windows(list(range(100)), 10, 32, seed=0)) == 3

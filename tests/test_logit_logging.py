"""acbench-hf gives hf's outputs and logs what the analysis needs (tiny random Llama, in-process)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _instances():
    from lm_eval.api.instance import Instance

    ctxs = ["The capital of France is", "pick up the red block, put it on", "Answer_1: There are 3 apples"]
    ll = []
    for d, ctx in enumerate(ctxs):
        for i, cont in enumerate([" Paris", " the blue block", " 7"]):
            ll.append(Instance("loglikelihood", {}, (ctx, cont), i, ("t_ll", d, 1)))
    gen = [Instance("generate_until", {}, (ctx, {"until": ["\n\n"], "max_gen_toks": 6}), 0, ("t_gen", d, 1))
           for d, ctx in enumerate(ctxs)]
    other = [Instance("generate_until", {}, ("Node: 1: open", {"until": ["\n\n"], "max_gen_toks": 4}), 0,
                      ("skipped_task", 0, 1))]
    return ll, gen + other


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    from lm_eval.models.huggingface import HFLM

    from lm_eval_acbench.models import LogitLoggingHFLM

    log_dir = tmp_path_factory.mktemp("logits")
    plain = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, dtype="float32")
    logging = LogitLoggingHFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, dtype="float32",
                               logits_dir=str(log_dir), logits_top_k=8, logits_max_positions=5,
                               logits_tasks="t_*", logits_temperatures="1|2", logits_flush_every=4)
    return plain, logging, log_dir


def test_same_outputs_and_records_match_a_full_forward(models):
    from lm_eval_acbench.analysis.energy import logsumexp_rows
    from lm_eval_acbench.analysis.logio import iter_records, read_meta
    from lm_eval_acbench.analysis.rankcorr import topk_from_full

    plain, logging, log_dir = models
    ll, gen = _instances()
    assert logging.loglikelihood(ll) == plain.loglikelihood(ll)
    assert logging.generate_until(gen) == plain.generate_until(gen)
    assert logging._acb_hidden_ok is True  # logits came from generate's own prefill

    meta = read_meta(log_dir)
    assert meta["top_k"] == 8 and meta["temperatures"] == [1.0, 2.0]
    records = {r["key"]: r for r in iter_records(log_dir)}
    # 9 loglikelihood + 3 generate_until requests of the selected tasks; "skipped_task" is not logged
    assert len(records) == 12
    assert not any(k.startswith("skipped_task") for k in records)
    assert {r["key"].split("|")[2] for r in records.values()} == {"loglikelihood", "generate_until"}

    model = plain.model
    for rec in records.values():
        n = len(rec["input_ids"])
        gen = rec["generated_ids"].tolist()
        ids = torch.tensor([rec["input_ids"].tolist() + gen[:-1]])  # teacher-forced prompt + generation
        with torch.no_grad():
            full = model(ids).logits[0].double().numpy()
        pos = rec["positions"]
        if rec["key"].split("|")[2] == "loglikelihood":
            assert pos.tolist() == list(range(max(0, n - 5), n))
        else:  # the prompt window (no chat template here: it ends at the prompt's end) + every generated token
            assert 1 <= len(gen) <= 6
            assert pos.tolist() == list(range(max(0, n - 5), n - 1 + len(gen)))
        z = full[pos]
        want_ids, want_vals = topk_from_full(z, 8)
        np.testing.assert_allclose(rec["topk_logits"], want_vals, rtol=1e-4, atol=1e-4)
        # ids agree wherever the logits are not near-ties
        gaps = np.abs(np.diff(want_vals, axis=1)).min() if want_vals.shape[1] > 1 else 1
        if gaps > 1e-3:
            assert (rec["topk_ids"] == want_ids).all()
        np.testing.assert_allclose(rec["lse"][:, 0], logsumexp_rows(z, 1.0), rtol=1e-5)
        np.testing.assert_allclose(rec["lse"][:, 1], logsumexp_rows(z, 2.0), rtol=1e-5)
        np.testing.assert_allclose(rec["gram"], z @ z.T, rtol=1e-4)
        if rec["key"].split("|")[2] == "generate_until":
            assert len(rec["generated_ids"]) >= 1


def test_no_logits_dir_logs_nothing(tiny_model_dir, tmp_path):
    from lm_eval_acbench.models import LogitLoggingHFLM

    lm = LogitLoggingHFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=1, dtype="float32")
    ll, _ = _instances()
    assert len(lm.loglikelihood(ll[:2])) == 2
    assert lm._acb_writer is None


def test_one_folder_per_run_and_one_shard_series_per_rank(tmp_path):
    from lm_eval_acbench.analysis.logio import LogExists, LogWriter, shards, write_meta

    meta = {"model": "a", "tokenizer_hash": "x", "top_k": 2, "temperatures": [1.0]}
    write_meta(tmp_path, meta, rank=0)
    write_meta(tmp_path, meta, rank=1)  # rank 1 starts after rank 0 wrote meta.json: its own shards are free
    rows = {"input_ids": [1, 2], "positions": [0, 1], "topk_ids": np.zeros((2, 2)), "topk_logits": np.zeros((2, 2)),
            "lse": np.zeros((2, 1)), "gram": np.eye(2)}
    for rank in (0, 1):
        w = LogWriter(tmp_path, rank=rank)
        w.add(task="t", doc_id=rank, request_type="corpus", request_idx=0, **rows)
        w.close()
    assert sorted(p.name.split("-")[1] for p in shards(tmp_path)) == ["r0", "r1"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    for rank in (0, 1):  # a second run into the same folder is refused, on every rank
        with pytest.raises(LogExists, match="already holds a logit log"):
            write_meta(tmp_path, meta, rank=rank)


def test_a_repeated_request_gets_its_own_key(tmp_path):
    from lm_eval_acbench.analysis.logio import LogWriter, iter_records, write_meta

    write_meta(tmp_path, {"model": "a", "tokenizer_hash": "x", "top_k": 2, "temperatures": [1.0]})
    w = LogWriter(tmp_path)
    rows = {"positions": [0], "topk_ids": np.zeros((1, 2)), "topk_logits": np.zeros((1, 2)),
            "lse": np.zeros((1, 1)), "gram": np.eye(1)}
    for step, ids in ((1, [1]), (1, [2]), (2, [3]), (-1, [4])):
        w.add(task="t", doc_id=0, request_type="generate_until", request_idx=0, episode=0 if step > 0 else -1,
              step=step, input_ids=ids, **rows)
    w.close()
    assert [r["key"] for r in iter_records(tmp_path)] == [
        "t|0|generate_until|0|episode0|step1", "t|0|generate_until|0|episode0|step1|dup1",
        "t|0|generate_until|0|episode0|step2", "t|0|generate_until|0"]


def test_fallback_forward_logs_the_same_rows(tiny_model_dir, tmp_path):
    """A model whose output head cannot be applied to the hidden states logs via a forward pass."""
    from lm_eval_acbench.analysis.logio import iter_records
    from lm_eval_acbench.models import LogitLoggingHFLM

    _, gen = _instances()
    rows = {}
    for name, hidden_ok in (("hidden", None), ("forward", False)):
        lm = LogitLoggingHFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, dtype="float32",
                              logits_dir=str(tmp_path / name), logits_top_k=8, logits_max_positions=4)
        lm._acb_hidden_ok = hidden_ok
        lm.generate_until(gen)
        rows[name] = {r["key"]: r for r in iter_records(tmp_path / name)}
    assert rows["hidden"].keys() == rows["forward"].keys() and len(rows["hidden"]) == 4
    for key, rec in rows["hidden"].items():
        other = rows["forward"][key]
        assert rec["prompt_hash"] == other["prompt_hash"]
        np.testing.assert_allclose(rec["topk_logits"], other["topk_logits"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(rec["gram"], other["gram"], rtol=1e-4)
        assert rec["generated_ids"].tolist() == other["generated_ids"].tolist()

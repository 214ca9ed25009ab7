"""lm-eval model types added by acbench: ``acbench-hf``, lm-eval's ``hf`` that also logs logits.

``LogitLoggingHFLM`` returns exactly what ``HFLM`` returns (it calls HFLM for every request and
only reads tensors HFLM computes anyway). Given ``logits_dir=FOLDER`` in ``--model_args`` it
writes one record per request to the logit log (``lm_eval_acbench.analysis.logio``): the input
token ids, and for the last ``logits_max_positions`` positions of the teacher-forced input the
top-``logits_top_k`` logits and ids, the full-vocabulary ``logsumexp(z/T)`` per temperature and the
raw Gram matrix ``z z^T`` of those rows (what ERank needs, exactly), plus generated token ids.

Where the logits come from, without an extra forward pass:

* ``loglikelihood``: HFLM's own batched forward (``_model_call``); each batch row is matched to
  its request by its token ids.
* ``generate_until``: the prefill step of ``generate`` with ``output_hidden_states``; the
  output embedding is applied to the final hidden states of the logged positions. The first
  batch checks this against the logits ``generate`` itself returns for the last prompt
  position; a model where they differ (e.g. logit soft-capping) gets a separate
  teacher-forced forward pass for logging instead.

``loglikelihood_rolling`` requests are not logged. Settings (model args): ``logits_dir``,
``logits_top_k`` (64), ``logits_max_positions`` (64), ``logits_tasks`` (fnmatch patterns
separated by ``|``, default all), ``logits_temperatures`` (``|``-separated, default ``1``),
``logits_flush_every`` (records per Parquet shard, 64).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import torch
from lm_eval.models.huggingface import HFLM

log = logging.getLogger(__name__)


def _split(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).replace(";", "|").split("|") if v.strip()]


def tokenizer_fingerprint(tokenizer) -> str:
    """sha1 over the tokenizer's vocabulary (token -> id), so runs can check they agree."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha1(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


def summarize_positions(logits: torch.Tensor, top_k: int, temperatures) -> dict:
    """What the log keeps for P logit rows (P x V): top-K, logsumexp per temperature, raw Gram.

    Top-K entries are sorted by descending logit, ties by ascending token id. The Gram matrix
    ``z z^T`` is computed in float64, the logsumexp in float32 (max-shifted), both over the full
    vocabulary.
    """
    from lm_eval_acbench.analysis.rankcorr import order_topk

    z = logits.detach()
    k = min(int(top_k), z.shape[-1])
    vals, ids = torch.topk(z.float(), k, dim=-1)
    ids_np, vals_np = order_topk(ids.cpu().numpy(), vals.cpu().numpy())
    z32 = z.float()
    # logsumexp is max-shifted inside torch: float32 keeps ~1e-7 relative accuracy, and is
    # several times cheaper than float64 over a 50k-150k vocabulary
    lse = torch.stack([torch.logsumexp(z32 / float(t), dim=-1) for t in temperatures], dim=-1).double()
    z64 = z.to(torch.float64)
    gram = z64 @ z64.T
    return {"topk_ids": ids_np, "topk_logits": vals_np, "lse": lse.cpu().numpy(),
            "gram": gram.cpu().numpy()}


class LogitLoggingHFLM(HFLM):
    """``hf`` plus a logit log (see the module docstring)."""

    def __init__(self, *args, logits_dir: str | None = None, logits_top_k: int = 64,
                 logits_max_positions: int = 64, logits_tasks: str | None = None,
                 logits_temperatures="1", logits_flush_every: int = 64, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._acb_writer = None
        self._acb_top_k = int(logits_top_k)
        self._acb_max_positions = int(logits_max_positions)
        self._acb_tasks = _split(logits_tasks)
        self._acb_temperatures = [float(t) for t in _split(logits_temperatures)] or [1.0]
        if self._acb_top_k < 1 or self._acb_max_positions < 1:
            raise ValueError("logits_top_k and logits_max_positions must be >= 1")
        if any(t <= 0 for t in self._acb_temperatures):
            raise ValueError("logits_temperatures must be positive")
        self._acb_ll_requests = None
        self._acb_ll_pending = None
        self._acb_gen_pending = None
        self._acb_batch_contexts = None
        self._acb_hidden_ok = None  # None: not checked yet
        if logits_dir:
            from lm_eval_acbench.analysis.logio import LogWriter, write_meta

            pretrained = kwargs.get("pretrained", args[0] if args else None)
            write_meta(Path(logits_dir), {
                "model": str(pretrained) if isinstance(pretrained, (str, Path)) else type(pretrained).__name__,
                "tokenizer": getattr(self.tokenizer, "name_or_path", ""),
                "tokenizer_hash": tokenizer_fingerprint(self.tokenizer),
                "top_k": self._acb_top_k,
                "max_positions": self._acb_max_positions,
                "temperatures": self._acb_temperatures,
                "source": "lm_eval",
            })
            self._acb_writer = LogWriter(Path(logits_dir), flush_every=int(logits_flush_every))

    # ------------------------------------------------------------------ selection and writing
    def _acb_wants(self, instance) -> bool:
        if self._acb_writer is None:
            return False
        if not self._acb_tasks:
            return True
        name = getattr(instance, "task_name", None) or ""
        return any(fnmatch.fnmatchcase(name, pat) for pat in self._acb_tasks)

    def _acb_start(self, n: int) -> int:
        return max(0, n - self._acb_max_positions)

    def _acb_write(self, instance, request_type: str, input_ids: list[int], tail_logits: torch.Tensor,
                   generated_ids=()) -> None:
        """``tail_logits``: the rows of positions ``_acb_start(n) .. n-1`` of the input."""
        n = len(input_ids)
        start = self._acb_start(n)
        summary = summarize_positions(tail_logits, self._acb_top_k, self._acb_temperatures)
        doc_id = getattr(instance, "doc_id", None)
        idx = getattr(instance, "idx", None)
        self._acb_writer.add(
            task=getattr(instance, "task_name", None) or "", doc_id=-1 if doc_id is None else doc_id,
            request_type=request_type, request_idx=0 if idx is None else idx,
            input_ids=input_ids, positions=np.arange(start, n), generated_ids=generated_ids, **summary)

    # ------------------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if self._acb_writer is None or not any(self._acb_wants(r) for r in requests):
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        self._acb_ll_requests = list(requests)
        try:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._acb_ll_requests = None
            self._acb_ll_pending = None
            self._acb_writer.flush()

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        instances, self._acb_ll_requests = self._acb_ll_requests, None
        if instances is not None and len(instances) == len(requests) and self.backend == "causal":
            pending: dict[tuple, list] = defaultdict(list)
            for inst, (_, ctx, cont) in zip(instances, requests):
                if self._acb_wants(inst):
                    inp = (list(ctx) + list(cont))[-(self.max_length + 1):][:-1]
                    pending[tuple(inp)].append(inst)
            self._acb_ll_pending = dict(pending)
        try:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        finally:
            self._acb_ll_pending = None

    def _model_call(self, inps, attn_mask=None, labels=None):
        logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        if self._acb_ll_pending:
            self._acb_capture_rows(inps, logits)
        return logits

    def _acb_capture_rows(self, inps: torch.Tensor, logits: torch.Tensor) -> None:
        """Match each (right-padded) batch row to pending requests by its token ids."""
        pending = self._acb_ll_pending
        for b, row in enumerate(inps.tolist()):
            real = len(row)
            while real > 0 and row[real - 1] == 0:  # pad_and_concat pads with 0
                real -= 1
            for length in range(max(real, 1), len(row) + 1):
                insts = pending.pop(tuple(row[:length]), None)
                if insts:
                    for inst in insts:
                        tail = logits[b, self._acb_start(length):length]
                        self._acb_write(inst, "loglikelihood", row[:length], tail)
            if not pending:
                break

    # ------------------------------------------------------------------ generate_until
    def generate_until(self, requests, disable_tqdm: bool = False):
        if self._acb_writer is None or not any(self._acb_wants(r) for r in requests):
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        pending: dict[str, deque] = defaultdict(deque)
        for req in requests:
            if self._acb_wants(req):
                pending[req.args[0]].append(req)
        self._acb_gen_pending = pending
        try:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        finally:
            self._acb_gen_pending = None
            self._acb_batch_contexts = None
            self._acb_writer.flush()

    def tok_batch_encode(self, strings, *args, **kwargs):
        out = super().tok_batch_encode(strings, *args, **kwargs)
        if self._acb_gen_pending is not None:
            self._acb_batch_contexts = list(strings)
        return out

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        contexts, self._acb_batch_contexts = self._acb_batch_contexts, None
        pending = self._acb_gen_pending
        wanted = []
        if pending is not None and contexts is not None and len(contexts) == context.shape[0]:
            wanted = [b for b, s in enumerate(contexts) if pending.get(s)]
        if not wanted or self.backend != "causal":
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        head = self.model.get_output_embeddings()
        if head is None:
            self._acb_hidden_ok = False
        use_hidden = self._acb_hidden_ok is not False
        extra = {"return_dict_in_generate": True}
        if use_hidden:
            extra.update(output_hidden_states=True, output_logits=self._acb_hidden_ok is None)
        out = super()._model_generate(context, max_length, stop, **generation_kwargs, **extra)
        mask = generation_kwargs.get("attention_mask")
        mask = torch.ones_like(context) if mask is None else mask
        width = context.shape[1]
        if use_hidden and not getattr(out, "hidden_states", None):
            use_hidden = False
        for b in wanted:
            inst = pending[contexts[b]].popleft()
            real = torch.nonzero(mask[b], as_tuple=False).flatten()
            ids = context[b, real].tolist()
            start = self._acb_start(len(real))
            rows = real[start:]
            with torch.no_grad():
                if use_hidden:
                    hidden = out.hidden_states[0][-1][b, rows]
                    logits = head(hidden)
                    if self._acb_hidden_ok is None:
                        ref = out.logits[0][b].to(logits.dtype)
                        tol = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 5e-2
                        ok = torch.allclose(logits[-1].float(), ref.float(), rtol=tol, atol=tol)
                        self._acb_hidden_ok = bool(ok)
                        if not ok:
                            log.warning("acbench-hf: output head on hidden states does not reproduce "
                                        "the model's logits; logging with a separate forward pass")
                            use_hidden = False
                if not use_hidden:
                    logits = self.model(context[b:b + 1, real]).logits[0, start:]
            gen = out.sequences[b, width:].tolist()
            if self.eot_token_id in gen:
                gen = gen[: gen.index(self.eot_token_id) + 1]
            self._acb_write(inst, "generate_until", ids, logits, generated_ids=gen)
        return out.sequences

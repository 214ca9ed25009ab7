"""lm-eval model types added by acbench: ``acbench-hf``, lm-eval's ``hf`` that also logs logits.

``LogitLoggingHFLM`` returns exactly what ``HFLM`` returns (it calls HFLM for every request and
only reads tensors HFLM computes anyway). Given ``logits_dir=FOLDER`` in ``--model_args`` it
writes one record per request to the logit log (``lm_eval_acbench.analysis.logio``): the input
token ids, and for the logged positions the top-``logits_top_k`` logits and ids, the
full-vocabulary ``logsumexp(z/T)`` per temperature and the raw Gram matrix ``z z^T`` of those
rows (what ERank needs, exactly), plus generated token ids.

Which positions:

* ``loglikelihood``: the last ``logits_max_positions`` positions of the teacher-forced input
  (context end and continuation).
* ``generate_until``: a window of ``logits_max_positions`` prompt positions, by default ending at
  the last *content* token (``logits_prompt_window=content``: the chat template's generation
  prompt, e.g. ``<|im_end|>\n<|im_start|>assistant\n``, is left out; ``end``: the last
  positions whatever they are), *and* the positions that chose the first
  ``logits_max_generated`` generated tokens (position ``n - 1 + j`` chose generated token j).

Where the logits come from, without an extra forward pass and without ``output_hidden_states``:

* ``loglikelihood``: HFLM's own batched forward (``_model_call``); each batch row is matched to
  its request by its token ids.
* ``generate_until``: a forward hook on the decoder keeps, from its final hidden state, only the
  rows of the logged positions (prefill: the window; each decode step: the new row); the output
  embedding is applied to those rows. Memory for logging is (window + generated) x hidden per
  request, whatever the number of layers. The first batch checks the rows against the logits
  ``generate`` itself returns; a model where they differ (e.g. logit soft-capping) gets a
  separate teacher-forced forward pass for logging instead.

``loglikelihood_rolling`` requests are not logged. Keys: ``logio.make_key``; a multi-turn episode
step carries its task's name and document, the request index, the episode (repeat) and the step.

Settings (model args): ``logits_dir``, ``logits_top_k`` (64), ``logits_max_positions`` (64),
``logits_prompt_window`` (``content`` | ``end``), ``logits_max_generated`` (64, 0: none),
``logits_tasks`` (fnmatch patterns separated by ``|``, default all), ``logits_temperatures``
(``|``-separated, default ``1``), ``logits_flush_every`` (records per Parquet shard, 64),
``logits_reference`` (a finished log of the base model: each record also stores this model's
logits at the reference's top-K ids of the same key and position, so top-k rank correlation
against that base is exact at every position).
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

from lm_eval_acbench.errors import UserError

log = logging.getLogger(__name__)

PROMPT_WINDOWS = ("content", "end")


class LoggingSettingError(UserError, ValueError):
    """A bad ``logits_*`` model argument or reference log: one line under ``lm_eval``."""


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
                 logits_temperatures="1", logits_flush_every: int = 64,
                 logits_prompt_window: str = "content", logits_max_generated: int = 64,
                 logits_reference: str | None = None, **kwargs) -> None:
        # settings are checked before the model loads: a typo should cost a second, not a load
        try:
            self._acb_top_k = int(logits_top_k)
            self._acb_max_positions = int(logits_max_positions)
            self._acb_max_generated = int(logits_max_generated)
            self._acb_temperatures = [float(t) for t in _split(logits_temperatures)] or [1.0]
            flush_every = int(logits_flush_every)
        except (TypeError, ValueError) as exc:
            raise LoggingSettingError(f"acbench-hf: a logits_* model argument is not a number ({exc})") from None
        self._acb_window = str(logits_prompt_window)
        self._acb_tasks = _split(logits_tasks)
        if self._acb_top_k < 1 or self._acb_max_positions < 1 or self._acb_max_generated < 0:
            raise LoggingSettingError("logits_top_k and logits_max_positions must be >= 1, "
                                      "logits_max_generated >= 0")
        if self._acb_window not in PROMPT_WINDOWS:
            raise LoggingSettingError(f"logits_prompt_window must be one of {PROMPT_WINDOWS}, "
                                      f"not {self._acb_window!r}")
        if any(t <= 0 for t in self._acb_temperatures):
            raise LoggingSettingError("logits_temperatures must be positive")
        if flush_every < 1:
            raise LoggingSettingError("logits_flush_every must be >= 1")
        super().__init__(*args, **kwargs)
        self._acb_writer = None
        self._acb_ll_requests = None
        self._acb_ll_pending = None
        self._acb_gen_pending = None
        self._acb_batch_contexts = None
        self._acb_hidden_ok = None  # None: not checked yet
        self._acb_tail = None  # token ids of the chat template's generation prompt
        self._acb_reference = None
        if logits_dir:
            from lm_eval_acbench.analysis.logio import LogWriter, ReferenceLog, write_meta

            pretrained = kwargs.get("pretrained", args[0] if args else None)
            meta = {
                "model": str(pretrained) if isinstance(pretrained, (str, Path)) else type(pretrained).__name__,
                "tokenizer": getattr(self.tokenizer, "name_or_path", ""),
                "tokenizer_hash": tokenizer_fingerprint(self.tokenizer),
                "top_k": self._acb_top_k,
                "max_positions": self._acb_max_positions,
                "max_generated": self._acb_max_generated,
                "prompt_window": self._acb_window,
                "temperatures": self._acb_temperatures,
                "world_size": int(self.world_size),
                "source": "lm_eval",
            }
            if logits_reference:
                try:
                    self._acb_reference = ReferenceLog(Path(logits_reference))
                except FileNotFoundError as exc:
                    raise LoggingSettingError(f"logits_reference: {exc}") from None
                ref_meta = self._acb_reference.meta
                if ref_meta.get("tokenizer_hash") != meta["tokenizer_hash"]:
                    raise LoggingSettingError(f"logits_reference {logits_reference} was logged with "
                                              "another tokenizer")
                meta.update(reference=str(logits_reference), reference_model=ref_meta.get("model"),
                            reference_top_k=int(ref_meta["top_k"]))
            write_meta(Path(logits_dir), meta, rank=int(self.rank))
            self._acb_writer = LogWriter(Path(logits_dir), flush_every=flush_every, rank=int(self.rank))

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

    def _acb_template_tail(self) -> list[int]:
        """Token ids the chat template appends after the last user message (the generation
        prompt), found by rendering a marker message; [] without a chat template."""
        if self._acb_tail is None:
            self._acb_tail = []
            tok = self.tokenizer
            if getattr(tok, "chat_template", None):
                mark = "acbench-content-marker"
                try:
                    text = tok.apply_chat_template([{"role": "user", "content": mark}], tokenize=False,
                                                   add_generation_prompt=True)
                    suffix = text[text.rindex(mark) + len(mark):]
                    self._acb_tail = list(tok(suffix, add_special_tokens=False)["input_ids"]) if suffix else []
                except Exception as exc:  # noqa: BLE001 - a template that cannot render a user turn
                    log.warning("acbench-hf: chat template tail not found (%s); the prompt window "
                                "ends at the last prompt token", exc)
        return self._acb_tail

    def _acb_prompt_window(self, ids: list[int]) -> range:
        """Logged prompt positions of a generate_until prompt (see ``logits_prompt_window``)."""
        end = len(ids)
        if self._acb_window == "content":
            tail = self._acb_template_tail()
            if tail and len(tail) < end and ids[end - len(tail):] == tail:
                end -= len(tail)
        return range(max(0, end - self._acb_max_positions), end)

    def _acb_write(self, instance, request_type: str, input_ids: list[int], positions, rows: torch.Tensor,
                   generated_ids=()) -> None:
        """``rows``: the logit rows (P x V) of ``positions`` of ``input_ids + generated_ids``."""
        from lm_eval_acbench.analysis.logio import prompt_hash, reference_columns

        summary = summarize_positions(rows, self._acb_top_k, self._acb_temperatures)
        doc_id = getattr(instance, "doc_id", None)
        idx = getattr(instance, "idx", None)
        fields = dict(task=getattr(instance, "task_name", None) or "", doc_id=-1 if doc_id is None else doc_id,
                      request_type=request_type, request_idx=0 if idx is None else idx,
                      episode=int(getattr(instance, "acbench_episode", -1)),
                      step=int(getattr(instance, "acbench_step", -1)))
        if self._acb_reference is not None:
            ref = self._acb_reference.get(self._acb_writer.key_for(**fields), prompt_hash(input_ids))
            if ref is not None:
                def at_ids(which, ids):
                    sel = torch.as_tensor(np.asarray(which), device=rows.device)
                    return rows[sel].float().gather(-1, torch.as_tensor(ids, device=rows.device)).cpu().numpy()

                summary["ref_ids"], summary["ref_logits"] = reference_columns(
                    ref, positions, input_ids, generated_ids, at_ids)
        self._acb_writer.add(**fields, input_ids=input_ids, positions=np.asarray(positions),
                             generated_ids=generated_ids, **summary)

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
                    start = self._acb_start(length)
                    for inst in insts:
                        self._acb_write(inst, "loglikelihood", row[:length], np.arange(start, length),
                                        logits[b, start:length])
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

    def _acb_decoder(self):
        get = getattr(self.model, "get_decoder", None)
        try:
            decoder = get() if callable(get) else None
        except Exception:  # noqa: BLE001 - a model without a separable decoder
            decoder = None
        return decoder if isinstance(decoder, torch.nn.Module) and decoder is not self.model else None

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        contexts, self._acb_batch_contexts = self._acb_batch_contexts, None
        pending = self._acb_gen_pending
        wanted = []
        if pending is not None and contexts is not None and len(contexts) == context.shape[0]:
            wanted = [b for b, s in enumerate(contexts) if pending.get(s)]
        if not wanted or self.backend != "causal":
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        head = self.model.get_output_embeddings()
        decoder = self._acb_decoder()
        if head is None or decoder is None:
            self._acb_hidden_ok = False
        use_hook = self._acb_hidden_ok is not False
        mask = generation_kwargs.get("attention_mask")
        mask = torch.ones_like(context) if mask is None else mask
        width = context.shape[1]
        plans = []  # per wanted row: real token indices, prompt ids, logged prompt positions
        for b in wanted:
            real = torch.nonzero(mask[b], as_tuple=False).flatten()
            ids = context[b, real].tolist()
            window = list(self._acb_prompt_window(ids))
            prefill = sorted(set(window) | {len(ids) - 1}) if self._acb_max_generated else window
            plans.append((b, real, ids, window, prefill))
        prefill_rows: list = []
        decode_rows: list = []
        rows_of = torch.tensor(wanted, device=context.device)

        shape_ok = [True]

        def keep_rows(module, inputs, output):
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None:
                hidden = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[0] != context.shape[0]:
                shape_ok[0] = False  # beams or an unexpected output: log by a separate forward instead
                return
            if not prefill_rows:
                prefill_rows.extend(hidden[b, real[pos]].detach() for b, real, _, _, pos in plans)
            elif len(decode_rows) + 1 < self._acb_max_generated:
                decode_rows.append(hidden[rows_of, -1].detach())

        extra = {}
        if use_hook and self._acb_hidden_ok is None:
            extra = {"return_dict_in_generate": True, "output_logits": True}
        handle = decoder.register_forward_hook(keep_rows) if use_hook else None
        try:
            out = super()._model_generate(context, max_length, stop, **generation_kwargs, **extra)
        finally:
            if handle is not None:
                handle.remove()
        sequences = out.sequences if extra else out
        if use_hook and (not prefill_rows or not shape_ok[0]):
            use_hook = False
        for i, (b, real, ids, window, prefill) in enumerate(plans):
            inst = pending[contexts[b]].popleft()
            gen = sequences[b, width:].tolist()
            if self.eot_token_id in gen:
                gen = gen[: gen.index(self.eot_token_id) + 1]
            pad = self.tokenizer.pad_token_id
            if pad is not None and pad != self.eot_token_id and pad in gen:  # a row that finished early
                gen = gen[: gen.index(pad)]
            n = len(ids)
            n_gen = min(len(gen), self._acb_max_generated)
            if use_hook:
                n_gen = min(n_gen, 1 + len(decode_rows))
            positions = sorted(set(window) | set(range(n - 1, n - 1 + n_gen)))
            with torch.no_grad():
                if use_hook:
                    by_pos = dict(zip(prefill, prefill_rows[i]))
                    for j in range(1, n_gen):
                        by_pos[n - 1 + j] = decode_rows[j - 1][i]
                    logits = head(torch.stack([by_pos[p] for p in positions]))
                    if self._acb_hidden_ok is None:
                        self._acb_hidden_ok = self._acb_check(logits, positions, n, n_gen, out.logits, b)
                        if not self._acb_hidden_ok:
                            use_hook = False
                if not use_hook:
                    full = torch.tensor([ids + gen[:max(n_gen - 1, 0)]], device=context.device)
                    logits = self.model(full).logits[0, positions]
            self._acb_write(inst, "generate_until", ids, positions, logits, generated_ids=gen)
        return sequences

    def _acb_check(self, logits, positions, n, n_gen, step_logits, b) -> bool:
        """Do head(hidden) rows reproduce the logits ``generate`` computed for the same steps?"""
        tol = 1e-3 if logits.dtype in (torch.float32, torch.float64) else 5e-2
        index = {p: r for r, p in enumerate(positions)}
        for j in range(min(n_gen, len(step_logits))):
            ref = step_logits[j][b].float()
            if not torch.allclose(logits[index[n - 1 + j]].float(), ref, rtol=tol, atol=tol):
                log.warning("acbench-hf: output head on hidden states does not reproduce the model's "
                            "logits; logging with a separate forward pass")
                return False
        return True

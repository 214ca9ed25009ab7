"""The logit log: an append-only folder of small Parquet shards plus ``meta.json``.

One row per logged request (a prompt, or a corpus window). Columns:

=============== ============== ===============================================================
key             string         what lines runs up (:func:`make_key`): task, doc_id, request
                               type, request index, and for episode steps the episode and step
task, doc_id    string, int64
request_type    string         ``loglikelihood`` | ``generate_until`` | ``corpus``
request_idx     int64
episode, step   int64          episode number (the repeat of its request) and step (1, 2, ...)
                               of a multi-turn step request; -1 for any other request
prompt_hash     string         sha1 of the input token ids (int32 little-endian)
input_ids       list<int32>    the prompt (teacher-forced input) of the forward pass
positions       list<int32>    logged positions p (the logits at p predict token p+1 of
                               ``input_ids + generated_ids``); p >= len(input_ids) - 1 can be
                               the positions that chose the generated tokens
topk_ids        list<int32>    P x K, flattened, descending logit
topk_logits     list<float32>  P x K, flattened
lse             list<float64>  P x len(temperatures): logsumexp(z/T) over the full vocabulary
gram            list<float64>  P x P raw Gram matrix z z^T of the logged positions' logit rows
generated_ids   list<int32>    tokens the model generated (generate_until), else empty
ref_ids         list<int32>    P x R: token ids of a *reference* log's top-R at the same key and
ref_logits      list<float32>  position (a compressed run logged against its base), and this
                               model's logits at them; empty without a reference; rows the
                               reference has no comparable position for are id -1, logit nan
=============== ============== ===============================================================

``meta.json`` holds the model, the tokenizer's fingerprint, K, the position cap, the temperatures
and (with a reference) the reference's folder and R. One folder holds one run: writing into a
folder that already holds a log is refused (:class:`LogExists`). A run of several processes
writes one shard series per rank (``part-r<rank>-...``) and only rank 0 writes ``meta.json``.
Shards and ``meta.json`` are written to a temporary name of their own process and renamed, so an
interrupted run leaves only complete files behind. pyarrow and numpy only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from lm_eval_acbench.errors import UserError

FORMAT = "acbench-logits/2"
META = "meta.json"
SHARD_GLOB = "part-*.parquet"


class BadLog(UserError, ValueError):
    """A logit log that cannot be read (corrupt ``meta.json``, truncated or foreign shard);
    the message is one line naming the file."""


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def prompt_hash(input_ids) -> str:
    return hashlib.sha1(np.asarray(input_ids, dtype="<i4").tobytes()).hexdigest()


def make_key(task: str, doc_id, request_type: str, request_idx, episode: int = -1, step: int = -1) -> str:
    """``task|doc_id|request_type|request_idx``, plus ``|episode<e>|step<s>`` for an episode step."""
    key = f"{task}|{doc_id}|{request_type}|{request_idx}"
    if step is not None and int(step) >= 0:
        key += f"|episode{int(episode)}|step{int(step)}"
    return key


class LogExists(UserError, ValueError):
    """The folder already holds a logit log (one folder per run). A ``UserError`` so that plain
    ``lm_eval --model acbench-hf`` prints it as one line (``_hook.install_error_hook``); still a
    ``ValueError`` for callers that catch that."""


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("key", pa.string()), ("task", pa.string()), ("doc_id", pa.int64()),
        ("request_type", pa.string()), ("request_idx", pa.int64()),
        ("episode", pa.int64()), ("step", pa.int64()), ("prompt_hash", pa.string()),
        ("input_ids", pa.list_(pa.int32())), ("positions", pa.list_(pa.int32())),
        ("topk_ids", pa.list_(pa.int32())), ("topk_logits", pa.list_(pa.float32())),
        ("lse", pa.list_(pa.float64())), ("gram", pa.list_(pa.float64())),
        ("generated_ids", pa.list_(pa.int32())),
        ("ref_ids", pa.list_(pa.int32())), ("ref_logits", pa.list_(pa.float32())),
    ])


def existing_log(folder: Path, rank: int = 0) -> str | None:
    """What makes ``folder`` an existing log for ``rank`` (None: free). Rank 0 owns ``meta.json``
    and every shard; another rank checks only its own shards (rank 0 may have started first)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if rank == 0:
        if (folder / META).exists():
            return META
        found = next(iter(folder.glob(SHARD_GLOB)), None)
    else:
        found = next(iter(folder.glob(f"part-r{rank}-*.parquet")), None)
    return found.name if found is not None else None


def write_meta(folder: Path, meta: dict, *, rank: int = 0) -> None:
    """Claim ``folder`` for one run: refuse a folder that already holds a log (:class:`LogExists`),
    then write ``meta.json`` (rank 0 only) through a temporary file of this process."""
    folder = Path(folder)
    held = existing_log(folder, rank)
    if held is not None:
        raise LogExists(f"{folder} already holds a logit log ({held}); one folder per run: "
                        "pass a new logits_dir or remove the old one")
    folder.mkdir(parents=True, exist_ok=True)
    if rank != 0:
        return
    path = folder / META
    tmp = folder / f".{META}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a logit log (no {META})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadLog(f"{path}: not readable JSON ({_reason(exc)})") from None
    if not isinstance(meta, dict):
        raise BadLog(f"{path}: expected a JSON object, got {type(meta).__name__}")
    top_k, temps = meta.get("top_k"), meta.get("temperatures")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BadLog(f"{path}: top_k must be a positive integer, not {top_k!r}")
    if (not isinstance(temps, list) or not temps
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in temps)):
        raise BadLog(f"{path}: temperatures must be a non-empty list of positive numbers, not {temps!r}")
    return meta


def _read_table(path: Path, columns: list[str] | None = None):
    """One shard as a pyarrow Table; a BadLog naming the file when it is not a complete shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = _reason(exc).replace(f" '{path}'", "")
        raise BadLog(f"{path}: not a readable Parquet shard ({reason})") from None
    missing = sorted(set(columns or _schema().names) - set(table.column_names))
    if missing:
        raise BadLog(f"{path}: not a logit-log shard (missing columns {', '.join(missing)})")
    return table


class LogWriter:
    """Buffers records and writes them as Parquet shards of ``flush_every`` rows."""

    def __init__(self, folder: Path, flush_every: int = 64, rank: int = 0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_every = max(1, int(flush_every))
        self._rows: list[dict] = []
        self._seq = 0
        self._stamp = f"r{int(rank)}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self._seen: dict[str, int] = {}
        self.written = 0
        self.duplicates = 0

    def key_for(self, *, task: str, doc_id: int, request_type: str, request_idx: int,
                episode: int = -1, step: int = -1) -> str:
        """The key the next :meth:`add` of this request gets."""
        key = make_key(task, doc_id, request_type, request_idx, episode, step)
        seen = self._seen.get(key, 0)
        return f"{key}|dup{seen}" if seen else key

    def add(self, *, task: str, doc_id: int, request_type: str, request_idx: int,
            input_ids, positions, topk_ids, topk_logits, lse, gram, generated_ids=(),
            episode: int = -1, step: int = -1, ref_ids=(), ref_logits=()) -> None:
        """Buffer one record. A key this writer has seen already (the same request sent again,
        e.g. lm-eval's ``repeats``) gets ``|dup<n>``: the n-th repeat lines up with the n-th
        repeat of the other run, and no record hides another."""
        input_ids = np.asarray(input_ids, dtype=np.int32)
        key = make_key(task, doc_id, request_type, request_idx, episode, step)
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        if seen:
            self.duplicates += 1
            key = f"{key}|dup{seen}"
        self._rows.append({
            "key": key,
            "task": str(task), "doc_id": int(doc_id), "request_type": request_type,
            "request_idx": int(request_idx), "episode": int(episode), "step": int(step),
            "prompt_hash": prompt_hash(input_ids),
            "input_ids": input_ids,
            "positions": np.asarray(positions, dtype=np.int32),
            "topk_ids": np.asarray(topk_ids, dtype=np.int32).ravel(),
            "topk_logits": np.asarray(topk_logits, dtype=np.float32).ravel(),
            "lse": np.asarray(lse, dtype=np.float64).ravel(),
            "gram": np.asarray(gram, dtype=np.float64).ravel(),
            "generated_ids": np.asarray(generated_ids, dtype=np.int32),
            "ref_ids": np.asarray(ref_ids, dtype=np.int32).ravel(),
            "ref_logits": np.asarray(ref_logits, dtype=np.float32).ravel(),
        })
        if len(self._rows) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        columns = {name: [row[name] for row in self._rows] for name in schema.names}
        table = pa.table({name: pa.array(columns[name], type=schema.field(name).type)
                          for name in schema.names}, schema=schema)
        name = f"part-{self._stamp}-{self._seq:06d}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.folder / name)
        self._seq += 1
        self.written += len(self._rows)
        self._rows = []

    close = flush


def shards(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob(SHARD_GLOB))


def read_index(folder: Path):
    """One row per logged record: key, prompt_hash, task, n_positions, shard, row (pandas)."""
    import pandas as pd

    frames = []
    for shard in shards(folder):
        t = _read_table(shard, columns=["key", "prompt_hash", "task", "positions"])
        df = pd.DataFrame({
            "key": t.column("key").to_pylist(),
            "prompt_hash": t.column("prompt_hash").to_pylist(),
            "task": t.column("task").to_pylist(),
            "n_positions": t.column("positions").combine_chunks().value_lengths().to_numpy(),
        })
        df["shard"] = shard.name
        df["row"] = np.arange(len(df))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["key", "prompt_hash", "task", "n_positions", "shard", "row"])
    return pd.concat(frames, ignore_index=True)


def _list_column(table, name: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(name).combine_chunks()
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return values, offsets


def load_shard(path: Path, n_temperatures: int, top_k: int) -> list[dict]:
    """Decode one shard into per-record dicts of numpy arrays (shapes restored)."""
    t = _read_table(path)
    try:
        return _decode(t, n_temperatures, top_k)
    except (ValueError, TypeError) as exc:  # list lengths that do not fit the meta's shapes
        raise BadLog(f"{path}: records do not match the log's top_k/temperatures ({_reason(exc)})") from None


def _decode(t, n_temperatures: int, top_k: int) -> list[dict]:
    keys = t.column("key").to_pylist()
    hashes = t.column("prompt_hash").to_pylist()
    tasks = t.column("task").to_pylist()
    cols = {name: _list_column(t, name, dt) for name, dt in [
        ("input_ids", np.int64), ("positions", np.int64), ("topk_ids", np.int64),
        ("topk_logits", np.float32), ("lse", np.float64), ("gram", np.float64),
        ("generated_ids", np.int64), ("ref_ids", np.int64), ("ref_logits", np.float32)]
        if name in t.column_names}
    out = []
    for i, key in enumerate(keys):
        rec = {"key": key, "prompt_hash": hashes[i], "task": tasks[i]}
        for name, (values, offsets) in cols.items():
            rec[name] = values[offsets[i]:offsets[i + 1]]
        p = len(rec["positions"])
        rec["topk_ids"] = rec["topk_ids"].reshape(p, top_k)
        rec["topk_logits"] = rec["topk_logits"].reshape(p, top_k)
        rec["lse"] = rec["lse"].reshape(p, n_temperatures)
        rec["gram"] = rec["gram"].reshape(p, p)
        ref = rec.pop("ref_ids", np.zeros(0, dtype=np.int64))
        ref_vals = rec.pop("ref_logits", np.zeros(0, dtype=np.float32))
        if ref.size and p:
            rec["ref_ids"] = ref.reshape(p, -1)
            rec["ref_logits"] = ref_vals.reshape(p, -1)
        out.append(rec)
    return out


def iter_records(folder: Path) -> Iterator[dict]:
    """Every record of a log, shard by shard (one shard in memory at a time)."""
    meta = read_meta(folder)
    for shard in shards(folder):
        yield from load_shard(shard, len(meta["temperatures"]), int(meta["top_k"]))


def summarize_rows(logits: np.ndarray, top_k: int, temperatures) -> dict:
    """numpy twin of ``lm_eval_acbench.models.summarize_positions`` (for corpora and tests).

    Top-K sorted by descending logit (ties: ascending id), logsumexp(z/T) per temperature and
    the raw Gram ``z z^T``, all over the full vocabulary, in float64.
    """
    from .rankcorr import topk_from_full

    z = np.asarray(logits, dtype=np.float64)
    ids, vals = topk_from_full(z, min(int(top_k), z.shape[-1]))
    lse = []
    for t in temperatures:
        zt = z / float(t)
        m = zt.max(axis=-1, keepdims=True)
        lse.append((m + np.log(np.exp(zt - m).sum(axis=-1, keepdims=True)))[:, 0])
    return {"topk_ids": ids, "topk_logits": vals, "lse": np.stack(lse, axis=-1), "gram": z @ z.T}


def write_synthetic(folder: Path, logits_by_key: dict, *, model: str, top_k: int = 32,
                    temperatures=(1.0,), tokenizer_hash: str = "synthetic", flush_every: int = 64,
                    input_ids_by_key: dict | None = None) -> Path:
    """Write a log from full logit matrices ``{(task, doc_id): (n, V) array}`` (tests, benches)."""
    write_meta(folder, {"model": model, "tokenizer": "synthetic", "tokenizer_hash": tokenizer_hash,
                        "top_k": int(top_k), "max_positions": None,
                        "temperatures": [float(t) for t in temperatures], "source": "synthetic"})
    writer = LogWriter(folder, flush_every=flush_every)
    for (task, doc_id), z in logits_by_key.items():
        n = z.shape[0]
        ids = (input_ids_by_key or {}).get((task, doc_id), np.arange(n) + 7 * int(doc_id))
        writer.add(task=task, doc_id=doc_id, request_type="corpus", request_idx=0, input_ids=ids,
                   positions=np.arange(n), **summarize_rows(z, top_k, temperatures))
    writer.close()
    return Path(folder)


def comparable_positions(positions_a, generated_a, positions_b, generated_b, n_prompt: int):
    """Positions both records logged whose contexts agree: ``(positions, index_a, index_b)``.

    Both records have the same prompt of ``n_prompt`` tokens (the caller checks the hash).
    Position ``p`` predicts token ``p + 1`` of ``prompt + generated``; its context is the prompt
    plus the first ``p - n_prompt + 1`` generated tokens, so a position past the prompt is
    comparable only while the two runs generated the same tokens up to it.
    """
    pos, ia, ib = np.intersect1d(np.asarray(positions_a), np.asarray(positions_b), return_indices=True)
    if pos.size == 0 or pos[-1] < n_prompt:
        return pos, ia, ib
    ga = np.asarray(generated_a)
    gb = np.asarray(generated_b)
    m = min(ga.size, gb.size)
    differ = np.nonzero(ga[:m] != gb[:m])[0]
    agree = int(differ[0]) if differ.size else m  # generated tokens shared from the start
    keep = pos < n_prompt + agree
    return pos[keep], ia[keep], ib[keep]


class ReferenceLog:
    """A finished log read by key, for logging another model against it (``ref_ids``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        index = read_index(self.folder).drop_duplicates("key", keep="first")
        self._where = {k: (h, s, int(r)) for k, h, s, r in
                       zip(index["key"], index["prompt_hash"], index["shard"], index["row"])}
        self._shard_name = None
        self._shard_rows: list = []

    def __len__(self) -> int:
        return len(self._where)

    def get(self, key: str, prompt_hash_: str) -> dict | None:
        """The reference record of ``key`` when its prompt is the same, else None."""
        hit = self._where.get(key)
        if hit is None or hit[0] != prompt_hash_:
            return None
        if self._shard_name != hit[1]:
            self._shard_rows = load_shard(self.folder / hit[1], len(self.meta["temperatures"]),
                                          int(self.meta["top_k"]))
            self._shard_name = hit[1]
        return self._shard_rows[hit[2]]


def reference_columns(reference: dict, positions, input_ids, generated_ids, rows_at_ids):
    """``ref_ids`` / ``ref_logits`` (P x R) of one record against its reference record.

    ``rows_at_ids(row_indices, ids)`` returns this model's logits at ``ids`` (len(row_indices) x R)
    for the given rows of the logged positions. Rows without a comparable reference position get
    id -1 and logit nan.
    """
    positions = np.asarray(positions)
    r = reference["topk_ids"].shape[1]
    ids = np.full((positions.size, r), -1, dtype=np.int64)
    vals = np.full((positions.size, r), np.nan, dtype=np.float32)
    _, mine, theirs = comparable_positions(positions, generated_ids, reference["positions"],
                                           reference["generated_ids"], len(input_ids))
    if mine.size:
        ids[mine] = reference["topk_ids"][theirs]
        vals[mine] = np.asarray(rows_at_ids(mine, ids[mine]), dtype=np.float32)
    return ids, vals

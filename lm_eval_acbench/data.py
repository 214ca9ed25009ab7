"""Where a task's records come from: a local folder, the HF hub, or our own sample set.

One rule for every acbench task, chosen by one setting:

* ``data_dir`` -- a local folder in the upstream file layout. Given per run with
  ``--metadata '{"data_dir": "/path"}'`` or for every run with ``ACBENCH_DATA_DIR``. The folder
  may be the benchmark's own folder or a parent holding one sub-folder per benchmark
  (``<data_dir>/<benchmark>/...``, e.g. ``worfbench/``, ``bfcl/``, ``teval/``).
* ``data_source`` -- ``auto`` (default), ``local``, ``hub`` or ``sample``; per run with
  ``--metadata '{"data_source": "sample"}'`` or for every run with ``ACBENCH_DATA_SOURCE``.
  ``auto`` takes the local folder when one is set, else the hub, and falls back to the sample
  set (with a warning) when the hub cannot be reached.

Every record a loader returns carries ``acbench_data_source`` (``local:<path>``, ``hub:<id>`` or
``sample:<name>``) so that results and reports can say when a sample stood in for the
benchmark. Task loaders return :func:`as_split` of their records: lm-eval needs a
``datasets.Dataset`` per split, and Arrow cannot hold heterogeneous nested values (tool schemas
differ per record), so every dict or list value is stored as a JSON string and read back with
:func:`doc_json`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from lm_eval_acbench import hub, thinking
from lm_eval_acbench.paths import SAMPLES_DIR

log = logging.getLogger(__name__)

DATA_DIR_ENV = "ACBENCH_DATA_DIR"
DATA_SOURCE_ENV = "ACBENCH_DATA_SOURCE"
SOURCE_FIELD = "acbench_data_source"
SOURCES = ("auto", "local", "hub", "sample")


class DataUnavailable(RuntimeError):
    """The requested data source cannot provide the records; the message says why."""


@dataclass(frozen=True)
class DataSource:
    kind: str  # "local" | "hub" | "sample"
    location: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"

    @property
    def is_sample(self) -> bool:
        return self.kind == "sample"


def data_settings(metadata: dict[str, Any] | None) -> tuple[Path | None, str]:
    """The (data_dir, data_source) in force: task metadata first, then the environment."""
    metadata = metadata or {}
    raw_dir = metadata.get("data_dir") or os.environ.get(DATA_DIR_ENV) or None
    source = str(metadata.get("data_source") or os.environ.get(DATA_SOURCE_ENV) or "auto")
    if source not in SOURCES:
        raise DataUnavailable(f"data_source must be one of {', '.join(SOURCES)}, not {source!r}")
    return (Path(raw_dir).expanduser() if raw_dir else None), source


def benchmark_dir(data_dir: Path, benchmark: str) -> Path:
    """``data_dir/<benchmark>`` when it exists, else ``data_dir`` itself."""
    nested = data_dir / benchmark
    return nested if nested.is_dir() else data_dir


def sample_dir(benchmark: str) -> Path:
    """Our own small sample set for a benchmark, in the upstream file layout."""
    return SAMPLES_DIR / benchmark


def load_records(
    benchmark: str,
    metadata: dict[str, Any] | None,
    *,
    from_folder: Callable[[Path], list[dict]],
    from_hub: Callable[[], list[dict]] | None,
    hub_id: str,
) -> tuple[list[dict], DataSource]:
    """Load a benchmark's records from the source the settings choose.

    ``from_folder`` reads the upstream layout from a folder; it serves both a user's local copy
    and our sample set, which is written in the same layout. ``from_hub`` fetches from the hub
    (None when the benchmark has no hub copy). Records get the ``acbench_data_source`` field
    and the ``strip_thinking`` setting (:func:`lm_eval_acbench.thinking.tag`).
    """
    data_dir, source = data_settings(metadata)
    strip = thinking.enabled(metadata)

    def tagged(records: list[dict], where: DataSource) -> tuple[list[dict], DataSource]:
        for record in records:
            record[SOURCE_FIELD] = str(where)
            record[thinking.FIELD] = strip
        return records, where

    def from_sample() -> tuple[list[dict], DataSource]:
        folder = sample_dir(benchmark)
        if not folder.is_dir():
            raise DataUnavailable(f"no sample set for {benchmark!r} at {folder}")
        return tagged(from_folder(folder), DataSource("sample", benchmark))

    if source == "sample":
        return from_sample()

    if source in ("auto", "local") and data_dir is not None:
        folder = benchmark_dir(data_dir, benchmark)
        if not folder.is_dir():
            raise DataUnavailable(f"{benchmark}: data_dir {data_dir} does not exist")
        return tagged(from_folder(folder), DataSource("local", str(folder)))
    if source == "local":
        raise DataUnavailable(
            f"{benchmark}: data_source=local needs a folder: set {DATA_DIR_ENV} or "
            "--metadata '{\"data_dir\": ...}'"
        )

    if from_hub is None:
        if source == "hub":
            raise DataUnavailable(f"{benchmark} has no hub copy; give a local data_dir")
    elif source == "hub" or hub.available():
        try:
            return tagged(from_hub(), DataSource("hub", hub_id))
        except Exception as exc:  # network errors come in many types
            if source == "hub":
                raise DataUnavailable(f"{benchmark}: cannot load {hub_id} from the hub: {exc}") from exc
            log.warning("%s: hub dataset %s unavailable (%s); using acbench's sample set", benchmark, hub_id, exc)

    log.warning(
        "%s: using acbench's small SAMPLE set, not the benchmark (set %s for real data)",
        benchmark,
        DATA_DIR_ENV,
    )
    return from_sample()


def read_json(path: Path) -> Any:
    """Read a JSON file, with one clear error for a missing or broken file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DataUnavailable(f"missing data file {path}") from exc
    except json.JSONDecodeError as exc:
        raise DataUnavailable(f"{path} is not valid JSON: {exc}") from exc


def iter_jsonl(path: Path, *, skip_broken: bool = True) -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file; broken lines are logged and skipped."""
    if not path.is_file():
        raise DataUnavailable(f"missing data file {path}")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if not skip_broken:
                    raise DataUnavailable(f"{path}:{number} is not valid JSON: {exc}") from exc
                log.warning("%s:%d: skipping a broken row (%s)", path, number, exc)
                continue
            if isinstance(row, dict):
                yield row
            else:
                log.warning("%s:%d: skipping a row that is not an object", path, number)


def as_split(records: Iterable[dict], split: str = "test"):
    """What a ``custom_dataset`` hook returns: ``{split: datasets.Dataset}``.

    Dict and list values become JSON strings (see the module docstring); read them with
    :func:`doc_json`. An empty record list is an error, since lm-eval cannot build a task on it.
    """
    import datasets

    rows = [
        {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in record.items()}
        for record in records
    ]
    if not rows:
        raise DataUnavailable("no usable records")
    return {split: datasets.Dataset.from_list(rows)}


def doc_json(doc: dict, key: str, default: Any = None) -> Any:
    """Read back a field that :func:`as_split` stored as JSON (plain values pass through)."""
    value = doc.get(key, default)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, an int over the digit limit, nested too deep
            return value
    return value

"""The study file: which models, which compression recipes, which tasks, how to run them.

A study is a YAML mapping validated by the pydantic models below. Every model rejects unknown
keys, so a typo (``limt: 2``) is an error that names the key and lists the allowed ones, never
a silently ignored setting. Relative paths inside a study file are taken relative to the
file's folder; paths given on the command line relative to the current directory.

Shorthands: a model may be a bare string (hub id or local folder; ``default`` is the embedded
SmolLM2-135M-Instruct), a recipe a bare string (a built-in recipe name or a YAML file).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.yaml_files import read_mapping

# capability -> the lm-eval task or group names that make it up (ACBench spec, section 1).
CAPABILITIES: dict[str, list[str]] = {
    "workflow": ["acbench_workflow"],
    "tool_use": ["acbench_teval", "acbench_function_call"],
    "long_context": ["acbench_niah", "acbench_longgenbench", "acbench_longbench"],
    "real_world": ["acbench_realworld"],
}
BASE = "base"  # the variant name of an uncompressed model
ENDPOINT_BACKENDS = ("local-completions", "local-chat-completions")
_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def safe_label(text: str) -> str:
    """A folder-safe label: letters, digits, ``._-``; other runs become ``-``."""
    label = _LABEL.sub("-", text).strip("-.")
    return label or "x"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_logits_dir(model_args: dict[str, Any]) -> dict[str, Any]:
    # The study deletes and rewrites each cell's logit log, so it must own the folder: a
    # user's logits_dir here would be a folder of theirs the study overwrites.
    if "logits_dir" in model_args:
        raise ValueError("logits_dir is set by the study (logits.enabled: true logs under <out>/logits/); "
                         "remove it from model_args")
    return model_args


class ModelSpec(_Strict):
    """One model: a hub id, a local HF folder, or ``default`` (the embedded SmolLM2-135M)."""

    path: str = Field(description="hub id, local folder, or 'default'")
    name: str | None = Field(None, description="label in folders and reports (default: from path)")
    model_args: dict[str, Any] = Field(default_factory=dict, description="extra lm-eval model_args")

    _model_args = field_validator("model_args")(_no_logits_dir)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @property
    def label(self) -> str:
        if self.name:
            return safe_label(self.name)
        if self.path == "default":
            return "SmolLM2-135M-Instruct"
        return safe_label(Path(self.path.rstrip("/")).name)


class RecipeSpec(_Strict):
    """One compression recipe: a built-in name, a YAML file, or an inline mapping."""

    recipe: str | dict[str, Any] = Field(description="built-in name, YAML path, or inline mapping")
    name: str | None = Field(None, description="label (default: the built-in name or file stem)")
    calibration: str | None = None
    num_samples: int | None = Field(None, ge=1)
    seq_len: int | None = Field(None, ge=8)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"recipe": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _named(self) -> "RecipeSpec":
        if isinstance(self.recipe, dict) and not self.name:
            raise ValueError("an inline recipe needs a 'name'")
        return self

    @property
    def is_file(self) -> bool:
        return isinstance(self.recipe, str) and (
            self.recipe.endswith((".yaml", ".yml")) or "/" in self.recipe
        )

    @property
    def label(self) -> str:
        if self.name:
            return safe_label(self.name)
        assert isinstance(self.recipe, str)
        return safe_label(Path(self.recipe).stem if self.is_file else self.recipe)


class Backend(_Strict):
    """How evaluation cells load models: lm-eval's ``hf``, ``vllm`` or an OpenAI-style endpoint."""

    type: Literal["hf", "vllm", "local-completions", "local-chat-completions"] = "hf"
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="passed through to lm-eval's model (vllm: tensor_parallel_size, "
        "data_parallel_size, gpu_memory_utilization, ...; endpoints: base_url, model, ...)",
    )
    batch_size: int | str = 1
    device: str | None = Field(None, description="hf: cpu, cuda, cuda:0 ... (default: lm-eval's choice)")
    num_gpus: float | None = Field(
        None, ge=0,
        description="GPUs one evaluation cell asks Ray for (default: vllm tp x dp, hf 1 on cuda, else 0)",
    )

    _model_args = field_validator("model_args")(_no_logits_dir)

    def gpus_per_eval(self) -> float:
        if self.num_gpus is not None:
            return self.num_gpus
        if self.type == "vllm":
            args = self.model_args
            return float(int(args.get("tensor_parallel_size", 1)) * int(args.get("data_parallel_size", 1)))
        if self.type == "hf" and self.device and self.device.startswith("cuda"):
            return 1.0
        return 0.0


class Generation(_Strict):
    """Generation settings; they override the tasks' own ``generation_kwargs``."""

    max_gen_toks: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    do_sample: bool | None = None
    top_p: float | None = Field(None, gt=0, le=1)
    extra: dict[str, Any] = Field(default_factory=dict, description="any other generation kwargs")

    def gen_kwargs(self) -> dict[str, Any] | None:
        kwargs = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        kwargs.update(self.extra)
        return kwargs or None


class Compression(_Strict):
    """Defaults for every recipe's calibration (a recipe's own settings win)."""

    calibration: str | None = Field(None, description="calibration data set (default: the recipe's)")
    num_samples: int | None = Field(None, ge=1)
    seq_len: int | None = Field(None, ge=8)
    seed: int = 0
    num_gpus: float | None = Field(None, ge=0, description="GPUs one compress cell asks Ray for")


class Logits(_Strict):
    """Log logits while evaluating (lm-eval model ``acbench-hf``; hf backend only)."""

    enabled: bool = False
    model_args: dict[str, Any] = Field(default_factory=dict, description="extra acbench-hf logging args")

    _model_args = field_validator("model_args")(_no_logits_dir)


class Analysis(_Strict):
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict, description="keyword settings for analyze_runs")


class Report(_Strict):
    enabled: bool = True


class Data(_Strict):
    source: Literal["auto", "local", "hub", "sample"] = "auto"
    dir: Path | None = None


class Executor(_Strict):
    type: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address (default: start a local instance)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance")
    cpus_per_cell: float = Field(1.0, gt=0)


class Study(_Strict):
    """A study: every model x (base + every recipe) x every task."""

    name: str = "study"
    out: Path = Path("acbench-study")
    models: list[ModelSpec] = Field(min_length=1)
    recipes: list[RecipeSpec] = Field(default_factory=list)
    include_base: bool = True
    tasks: list[str] = Field(default_factory=list, description="lm-eval task or group names")
    capabilities: list[Literal["workflow", "tool_use", "long_context", "real_world"]] = Field(
        default_factory=list)
    include_path: list[Path] = Field(default_factory=list, description="extra lm-eval task folders")
    backend: Backend = Field(default_factory=Backend)
    generation: Generation = Field(default_factory=Generation)
    limit: float | None = Field(None, gt=0, description="documents per task (<1: a fraction)")
    num_fewshot: int | None = Field(None, ge=0)
    apply_chat_template: bool = False
    system_instruction: str | None = None
    seed: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict, description="extra lm-eval task metadata")
    compression: Compression = Field(default_factory=Compression)
    logits: Logits = Field(default_factory=Logits)
    analysis: Analysis = Field(default_factory=Analysis)
    report: Report = Field(default_factory=Report)
    data: Data = Field(default_factory=Data)
    executor: Executor = Field(default_factory=Executor)

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: float | None) -> float | int | None:
        if value is not None and value >= 1:
            if value != int(value):
                raise ValueError("a limit of 1 or more is a count of documents: use a whole number")
            return int(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Study":
        if not self.tasks and not self.capabilities:
            raise ValueError("name some 'tasks' or 'capabilities' to evaluate")
        if not self.include_base and not self.recipes:
            raise ValueError("include_base is false and there are no recipes: nothing to evaluate")
        for what, labels in (("model", [m.label for m in self.models]),
                             ("recipe", [r.label for r in self.recipes])):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise ValueError(f"two {what}s share the label {dupes[0]!r}: give one a distinct 'name'")
        if BASE in [r.label for r in self.recipes]:
            raise ValueError(f"{BASE!r} is the uncompressed model's label: name the recipe otherwise")
        if self.backend.type in ENDPOINT_BACKENDS:
            if self.recipes:
                raise ValueError(
                    f"backend {self.backend.type} evaluates a served model and cannot compress it: "
                    "drop 'recipes' (serve each compressed checkpoint and list it as a model)")
            if self.logits.enabled:
                raise ValueError("logits.enabled needs the hf backend (an endpoint returns no logits)")
        elif self.logits.enabled and self.backend.type != "hf":
            raise ValueError("logits.enabled needs the hf backend (model acbench-hf)")
        return self

    # ---- derived -------------------------------------------------------------------------
    @property
    def variants(self) -> list[str]:
        """Variant labels evaluated per model: ``base`` (if included) then each recipe."""
        return ([BASE] if self.include_base else []) + [r.label for r in self.recipes]

    def recipe(self, label: str) -> RecipeSpec:
        return next(r for r in self.recipes if r.label == label)

    def model(self, label: str) -> ModelSpec:
        return next(m for m in self.models if m.label == label)

    @property
    def runs_analysis(self) -> bool:
        return self.logits.enabled and self.analysis.enabled and self.include_base and bool(self.recipes)


# ---- loading ---------------------------------------------------------------------------------

def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at ``loc`` (walking nested models and lists)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        candidates = [annotation, *(inner or [])]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "str"))))
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(Study, loc)
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            lines.append(f"{where}: unknown key{extra} (allowed: {', '.join(allowed)})")
        elif err["type"] == "list_type":
            lines.append(f"{where}: expected a list (YAML '- item' lines or [a, b]), "
                         f"got {_yaml_kind(err.get('input'))}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
    lines = list(dict.fromkeys(lines))
    head = f"invalid study {source}:"
    if len(lines) == 1:
        return f"{head} {lines[0]}"
    return head + "".join(f"\n  {line}" for line in lines)


def _yaml_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a {type(value).__name__}" if value is not None else "nothing (null)"


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _resolve_relative(data: dict, base: Path) -> dict:
    """Make the file's relative paths absolute against its folder (``base``)."""
    data = dict(data)

    def rel(value):
        if value is None:
            return None
        path = Path(str(value)).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    if "out" in data:
        data["out"] = rel(data["out"])
    if isinstance(data.get("include_path"), list):
        data["include_path"] = [rel(p) for p in data["include_path"]]
    if isinstance(data.get("data"), dict) and data["data"].get("dir"):
        data["data"] = {**data["data"], "dir": rel(data["data"]["dir"])}
    # Only lists are rewritten; anything else reaches validation as it is and is rejected there
    # (iterating a mapping or a string here would turn `models: {path: x}` into a list of keys).
    models = []
    for m in _as_list(data.get("models")):
        path = m if isinstance(m, str) else (m.get("path") if isinstance(m, dict) else None)
        if isinstance(path, str) and path != "default" and not Path(path).is_absolute() and (base / path).exists():
            m = {"path": rel(path)} if isinstance(m, str) else {**m, "path": rel(path)}
        models.append(m)
    if models:
        data["models"] = models
    recipes = []
    for r in _as_list(data.get("recipes")):
        value = r if isinstance(r, str) else (r.get("recipe") if isinstance(r, dict) else None)
        if isinstance(value, str) and value.endswith((".yaml", ".yml")) and not Path(value).is_absolute():
            r = {"recipe": rel(value), "name": Path(value).stem} if isinstance(r, str) else {
                **r, "recipe": rel(value), "name": r.get("name") or Path(value).stem}
        recipes.append(r)
    if recipes:
        data["recipes"] = recipes
    return data


def set_dotted(data: dict, key: str, value: Any) -> dict:
    """Return ``data`` with ``a.b.c`` set to ``value`` (creating mappings on the way)."""
    parts = key.split(".")
    out = dict(data)
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value
    return out


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key.sub=value`` -> (key, YAML-parsed value); for ``--set`` on the command line."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set generation.max_gen_toks=32")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return key.strip(), value


def read_study_file(path: str | Path) -> dict:
    path = Path(path)
    data = read_mapping(path, "study file", expected="a YAML mapping (models:, recipes:, tasks:, ...)")
    return _resolve_relative(data, path.resolve().parent)


def load_study(source: str | Path | dict, overrides: dict[str, Any] | None = None) -> Study:
    """Validate a study from a YAML file or a mapping; ``overrides`` are dotted keys that win."""
    if isinstance(source, dict):
        data, where = dict(source), "(mapping)"
    else:
        data, where = read_study_file(source), str(source)
    for key, value in (overrides or {}).items():
        data = set_dotted(data, key, value)
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_errors(exc, where)) from None


def study_to_yaml(study: Study) -> str:
    return yaml.safe_dump(study.model_dump(mode="json", exclude_defaults=False), sort_keys=False)

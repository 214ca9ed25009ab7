"""Typed compression recipes: what ``acbench compress`` flags and recipe YAML files both say.

A recipe is an ordered list of at most one pruning step followed by at most one quantization
step, plus optional calibration and perplexity settings. Every model rejects unknown keys, so
a typo in a YAML file is an error, never a silently ignored setting.

N:M patterns follow the usual convention: ``2:4`` keeps at most 2 nonzero weights in every 4
consecutive weights of a row (along the input dimension), i.e. sparsity 1 - N/M.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.yaml_files import read_mapping

QUANT_METHODS = ("gptq", "awq", "rtn")
PRUNE_METHODS = ("wanda", "sparsegpt", "magnitude")
METHODS = QUANT_METHODS + PRUNE_METHODS
WEIGHT_BITS = (4, 8)  # the int weight-only schemes with kernels: W4A16 and W8A16

# Paper defaults for calibration (ACBench spec, section 6): samples x tokens per method.
CALIBRATION_DEFAULTS = {
    "gptq": (128, 2048),
    "awq": (128, 512),
    "wanda": (128, 4096),
    "sparsegpt": (128, 4096),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _QuantStep(_Strict):
    bits: int = 4
    group_size: int | None = Field(128, description="weights per scale along the input dim; null = per output channel")
    symmetric: bool = True
    group_size_policy: Literal["adjust", "strict"] = Field(
        "adjust",
        description="when a layer's input size is not a multiple of group_size: 'adjust' picks the "
        "largest power of two <= group_size dividing every layer, 'strict' is an error",
    )

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        if value not in WEIGHT_BITS:
            raise ValueError(
                f"bits {value} has no weight-only int scheme here: use 4 (W4A16) or 8 (W8A16)"
            )
        return value

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int | None) -> int | None:
        if value is None or value == -1:
            return None
        if value <= 0:
            raise ValueError(f"group_size must be positive (or null for per-channel), got {value}")
        return value

    @property
    def scheme_name(self) -> str:
        return f"W{self.bits}A16" + ("" if self.symmetric else "_ASYM")


class GPTQStep(_QuantStep):
    method: Literal["gptq"] = "gptq"
    actorder: Literal["static", "group", "weight"] | None = "static"
    dampening_frac: float = Field(0.01, gt=0, lt=1)
    block_size: int = Field(128, gt=0)


class AWQStep(_QuantStep):
    method: Literal["awq"] = "awq"
    duo_scaling: bool = True
    n_grid: int = Field(20, gt=0)


class RTNStep(_QuantStep):
    method: Literal["rtn"] = "rtn"


def parse_pattern(pattern: str) -> tuple[int, int]:
    """``"N:M"`` -> (N kept, M group); raises ValueError unless 0 < N < M."""
    parts = str(pattern).split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"pattern must look like N:M (e.g. 2:4), got {pattern!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 0 < n < m:
        raise ValueError(f"pattern {pattern}: need 0 < N < M (N weights kept of every M)")
    return n, m


class _PruneStep(_Strict):
    sparsity: float | None = Field(None, description="fraction of weights set to zero; default 0.5")
    pattern: str | None = Field(None, description="N:M semi-structured pattern, N kept of every M")

    @model_validator(mode="after")
    def _consistent(self):
        if self.sparsity is not None and not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must be between 0 and 1 (exclusive), got {self.sparsity}")
        if self.pattern is not None:
            n, m = parse_pattern(self.pattern)
            implied = 1.0 - n / m
            if self.sparsity is not None and abs(self.sparsity - implied) > 1e-6:
                raise ValueError(
                    f"pattern {self.pattern} means sparsity {implied:g}; sparsity {self.sparsity:g} contradicts it"
                )
            if self.sparsity is None:
                object.__setattr__(self, "sparsity", implied)
        elif self.sparsity is None:
            object.__setattr__(self, "sparsity", 0.5)
        return self

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_pattern(self.pattern) if self.pattern else None


class WandaStep(_PruneStep):
    method: Literal["wanda"] = "wanda"


class SparseGPTStep(_PruneStep):
    method: Literal["sparsegpt"] = "sparsegpt"
    dampening_frac: float = Field(0.01, gt=0, lt=1)
    block_size: int = Field(128, gt=0)


class MagnitudeStep(_PruneStep):
    method: Literal["magnitude"] = "magnitude"


Step = Annotated[
    Union[GPTQStep, AWQStep, RTNStep, WandaStep, SparseGPTStep, MagnitudeStep],
    Field(discriminator="method"),
]


class CalibrationConfig(_Strict):
    source: str | None = Field(
        None,
        description="wikitext2 (default) | c4 | pile-val | open_platypus | acbench-sample | a local .txt/.jsonl file",
    )
    num_samples: int | None = Field(None, gt=0)
    seq_len: int | None = Field(None, gt=0)
    seed: int | None = None


class PerplexityConfig(_Strict):
    enabled: bool = True
    windows: int = Field(8, gt=0, description="held-out windows scored before and after")
    seq_len: int = Field(512, gt=1)


class Recipe(_Strict):
    name: str | None = None
    description: str | None = None
    steps: list[Step] = Field(min_length=1)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    perplexity: PerplexityConfig = Field(default_factory=PerplexityConfig)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    ignore: list[str] = Field(default_factory=lambda: ["lm_head"], description="modules left alone")

    @model_validator(mode="after")
    def _order(self):
        kinds = ["quant" if s.method in QUANT_METHODS else "prune" for s in self.steps]
        if kinds.count("quant") > 1 or kinds.count("prune") > 1:
            raise ValueError(f"at most one pruning and one quantization step, got {[s.method for s in self.steps]}")
        if kinds == ["quant", "prune"]:
            raise ValueError("pruning must come before quantization (prune a quantized model is not supported)")
        return self

    @property
    def prune_step(self):
        return next((s for s in self.steps if s.method in PRUNE_METHODS), None)

    @property
    def quant_step(self):
        return next((s for s in self.steps if s.method in QUANT_METHODS), None)

    @property
    def needs_calibration(self) -> bool:
        return any(s.method in CALIBRATION_DEFAULTS for s in self.steps)

    def default_calibration_shape(self) -> tuple[int, int]:
        """(samples, tokens) of the first step that calibrates; the paper's numbers."""
        for step in self.steps:
            if step.method in CALIBRATION_DEFAULTS:
                return CALIBRATION_DEFAULTS[step.method]
        return (0, 0)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the fully resolved recipe (defaults filled in)."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"name", "description"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _q(method: str, **kw) -> dict:
    return {"method": method, **kw}


BUILTIN_RECIPES: dict[str, dict[str, Any]] = {
    "gptq_w4a16": {"steps": [_q("gptq")], "description": "GPTQ W4A16, symmetric, group 128, static act-order"},
    "gptq_w8a16": {"steps": [_q("gptq", bits=8)], "description": "GPTQ W8A16, symmetric, group 128"},
    "awq_w4a16": {"steps": [_q("awq")], "description": "AWQ W4A16, symmetric, group 128"},
    "rtn_w4a16": {"steps": [_q("rtn")], "description": "round-to-nearest W4A16, group 128 (no calibration)"},
    "rtn_w8a16": {"steps": [_q("rtn", bits=8)], "description": "round-to-nearest W8A16, group 128"},
    "wanda_50": {"steps": [_q("wanda", sparsity=0.5)], "description": "Wanda 50% unstructured"},
    "wanda_2of4": {"steps": [_q("wanda", pattern="2:4")], "description": "Wanda 2:4"},
    "sparsegpt_50": {"steps": [_q("sparsegpt", sparsity=0.5)], "description": "SparseGPT 50% unstructured"},
    "sparsegpt_2of4": {"steps": [_q("sparsegpt", pattern="2:4")], "description": "SparseGPT 2:4"},
    "magnitude_50": {"steps": [_q("magnitude", sparsity=0.5)], "description": "magnitude 50% unstructured (per row)"},
    "magnitude_2of4": {"steps": [_q("magnitude", pattern="2:4")], "description": "magnitude 2:4"},
    "sparsegpt_2of4_gptq_w4a16": {
        "steps": [_q("sparsegpt", pattern="2:4"), _q("gptq")],
        "description": "SparseGPT 2:4 then GPTQ W4A16 (the 2:4 mask is re-applied after GPTQ)",
    },
}


def _validate(data: dict, origin: str) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'recipe'}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"invalid recipe ({origin}): {problems}") from None


def load_recipe(source: str | Path | dict | Recipe) -> Recipe:
    """A Recipe from a built-in name, a YAML file, a dict, or a Recipe (returned as is)."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, dict):
        return _validate(source, "dict")
    text = str(source)
    if text in BUILTIN_RECIPES:
        return _validate({"name": text, **BUILTIN_RECIPES[text]}, f"built-in {text}")
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(
            f"recipe {text!r} is neither a file nor a built-in recipe ({', '.join(sorted(BUILTIN_RECIPES))})"
        )
    data = read_mapping(path, "recipe", expected="a mapping with 'steps'")
    data.setdefault("name", path.stem)
    return _validate(data, str(path))

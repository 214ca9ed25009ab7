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

QUANT_METHODS = ("gptq", "awq", "rtn", "nf4")
PRUNE_METHODS = ("wanda", "sparsegpt", "magnitude")
METHODS = QUANT_METHODS + PRUNE_METHODS
INT_WEIGHT_BITS = (2, 3, 4, 8)  # packed int weights (compressed-tensors pack-quantized / int-quantized)
ACTIVATIONS = ("none", "int8", "fp8")  # input activations: none (weight-only) or dynamic per token

# The paper's calibration per method (ACBench spec section 6, issue 18): set, samples x tokens.
# A quantizer that also quantizes activations (W8A8) calibrates on open_platypus, 1,024 x 2,048.
CALIBRATION_DEFAULTS = {
    "gptq": ("pile-val", 128, 2048),
    "awq": ("pile-val", 128, 512),
    "wanda": ("wikitext2", 128, 4096),
    "sparsegpt": ("wikitext2", 128, 4096),
}
W8A8_CALIBRATION = ("open_platypus", 1024, 2048)
KV_CALIBRATION = ("wikitext2", 128, 512)  # static K/V scales of a round-to-nearest recipe


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _QuantStep(_Strict):
    bits: int = 4
    weight_type: Literal["int", "fp8"] = Field("int", description="int (packed integers) or fp8 (float8 e4m3)")
    activations: Literal["none", "int8", "fp8"] = Field(
        "none", description="input activations: none (weight-only), or int8 / fp8 dynamic per token")
    group_size: int | None = Field(128, description="weights per scale along the input dim; null = per output channel")
    symmetric: bool = True
    group_size_policy: Literal["adjust", "strict"] = Field(
        "adjust",
        description="when a layer's input size is not a multiple of group_size: 'adjust' picks the "
        "largest power of two <= group_size dividing every layer, 'strict' is an error",
    )
    kv_cache_bits: int | None = Field(
        None, description="8 (fp8) or 4 (int4) bits for the K and V cache: llmcompressor's kv_cache_scheme")

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int | None) -> int | None:
        if value is None or value == -1:
            return None
        if value <= 0:
            raise ValueError(f"group_size must be positive (or null for per-channel), got {value}")
        return value

    @field_validator("kv_cache_bits")
    @classmethod
    def _kv(cls, value: int | None) -> int | None:
        if value is not None and value not in (4, 8):
            raise ValueError(f"kv_cache_bits {value}: use 8 (fp8) or 4 (int4)")
        return value

    @model_validator(mode="after")
    def _scheme(self):
        if self.weight_type == "int" and self.bits not in INT_WEIGHT_BITS:
            raise ValueError(f"bits {self.bits} has no int weight scheme here: use 2, 3, 4 or 8")
        if self.weight_type == "fp8" and self.bits != 8:
            raise ValueError(f"fp8 weights have 8 bits, not {self.bits}")
        if self.activations == "int8" and (self.weight_type, self.bits) != ("int", 8):
            raise ValueError("int8 activations go with int8 weights (W8A8)")
        if self.activations == "fp8" and self.weight_type != "fp8":
            raise ValueError("fp8 activations go with fp8 weights (FP8_DYNAMIC)")
        if self.activations != "none" and not self.symmetric:
            raise ValueError(f"{self.activations} activations need symmetric weights")
        return self

    @property
    def scheme_name(self) -> str:
        if self.weight_type == "fp8":
            return "FP8_DYNAMIC" if self.activations == "fp8" else "FP8_W8A16"
        if self.activations == "int8":
            return "W8A8"
        return f"W{self.bits}A16" + ("" if self.symmetric else "_ASYM")


class GPTQStep(_QuantStep):
    method: Literal["gptq"] = "gptq"
    actorder: Literal["static", "group", "weight"] | None = "static"
    dampening_frac: float = Field(0.01, gt=0, lt=1)
    block_size: int = Field(128, gt=0)
    smoothquant_strength: float | None = Field(
        None, gt=0, lt=1, description="run SmoothQuant with this migration strength before GPTQ (W8A8 only; paper: 0.8)")

    @model_validator(mode="after")
    def _smoothquant(self):
        if self.smoothquant_strength is not None and self.activations == "none":
            raise ValueError("smoothquant_strength moves activation outliers into weights: it needs quantized activations")
        return self


class AWQStep(_QuantStep):
    method: Literal["awq"] = "awq"
    duo_scaling: bool = True
    n_grid: int = Field(20, gt=0)

    @model_validator(mode="after")
    def _weight_only(self):
        if self.activations != "none" or self.weight_type != "int":
            raise ValueError("AWQ here is weight-only int (W4A16 / W8A16)")
        return self


class RTNStep(_QuantStep):
    method: Literal["rtn"] = "rtn"


class NF4Step(_Strict):
    """bitsandbytes' 4-bit NormalFloat by fake quantization: each block of ``block_size``
    consecutive weights of a row is scaled by its absmax and rounded to the nearest of NF4's 16
    code values, then stored dequantized (a dense checkpoint every loader reads)."""

    method: Literal["nf4"] = "nf4"
    block_size: int = Field(64, gt=0, description="weights per absmax scale (bitsandbytes default 64)")

    bits: Literal[4] = 4


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
    Union[GPTQStep, AWQStep, RTNStep, NF4Step, WandaStep, SparseGPTStep, MagnitudeStep],
    Field(discriminator="method"),
]


class CalibrationConfig(_Strict):
    source: str | None = Field(
        None,
        description="default: the paper's set per method (pile-val for GPTQ/AWQ, wikitext2 for pruning, "
        "open_platypus for W8A8) | wikitext2 | c4 | pile-val | open_platypus | paul-graham-essays | "
        "acbench-sample | a local .txt/.jsonl file",
    )
    num_samples: int | None = Field(None, gt=0)
    seq_len: int | None = Field(None, gt=0)
    seed: int | None = None


class PerplexityConfig(_Strict):
    enabled: bool = True
    windows: int = Field(8, gt=0, description="held-out windows scored before and after")
    seq_len: int = Field(512, gt=1)
    text: str | None = Field(None, description="a local text file scored whole (e.g. WikiText-2 wiki.test.raw); "
                             "default: the calibration source's held-out part")


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
        return any(_calibrates(s) for s in self.steps)

    def default_calibration(self) -> tuple[str, int, int]:
        """(source, samples, tokens) of the first step that calibrates: the paper's settings.
        Recipes that calibrate on nothing still score perplexity on WikiText-2's test split."""
        for step in self.steps:
            if _calibrates(step):
                if getattr(step, "activations", "none") != "none":
                    return W8A8_CALIBRATION
                return CALIBRATION_DEFAULTS.get(step.method, KV_CALIBRATION)
        return ("wikitext2", 0, 0)

    def default_calibration_shape(self) -> tuple[int, int]:
        return self.default_calibration()[1:]

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the fully resolved recipe (defaults filled in)."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"name", "description"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _calibrates(step) -> bool:
    """GPTQ, AWQ, Wanda and SparseGPT need data; so does RTN with (static) K/V cache scales."""
    if step.method in CALIBRATION_DEFAULTS:
        return True
    return step.method == "rtn" and step.kv_cache_bits is not None


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
        "description": "SparseGPT 2:4 then GPTQ W4A16 (GPTQ's error feedback keeps pruned weights at zero)",
    },
    "gptq_w8a8": {
        "steps": [_q("gptq", bits=8, group_size=None, activations="int8")],
        "description": "GPTQ W8A8: int8 per-channel weights, int8 dynamic per-token activations",
    },
    "smoothquant_gptq_w8a8": {
        "steps": [_q("gptq", bits=8, group_size=None, activations="int8", smoothquant_strength=0.8)],
        "description": "SmoothQuant (strength 0.8) then GPTQ W8A8, as the paper's W8A8 runs",
    },
    "fp8_dynamic": {
        "steps": [_q("rtn", bits=8, weight_type="fp8", activations="fp8", group_size=None)],
        "description": "FP8 e4m3 per-channel weights, dynamic per-token FP8 activations (no calibration)",
    },
    "rtn_w2a16": {"steps": [_q("rtn", bits=2)], "description": "round-to-nearest W2A16, group 128"},
    "rtn_w3a16": {"steps": [_q("rtn", bits=3)], "description": "round-to-nearest W3A16, group 128"},
    "gptq_w3a16": {"steps": [_q("gptq", bits=3)], "description": "GPTQ W3A16, symmetric, group 128"},
    "nf4": {"steps": [_q("nf4")], "description": "4-bit NormalFloat (bitsandbytes code book, block 64), fake-quantized"},
    "kv_fp8": {
        "steps": [_q("rtn", bits=8, group_size=None, kv_cache_bits=8)],
        "description": "W8A16 weights plus an FP8 K/V cache scheme (static per-tensor scales from calibration)",
    },
    "kv_int4": {
        "steps": [_q("rtn", bits=8, group_size=None, kv_cache_bits=4)],
        "description": "W8A16 weights plus an int4 K/V cache scheme (static per-tensor scales from calibration)",
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

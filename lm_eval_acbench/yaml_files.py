"""Reading the YAML files users write (recipes, studies): one clear error for every way they fail."""

from __future__ import annotations

from pathlib import Path

from lm_eval_acbench.errors import UserError


def read_mapping(path: Path, what: str, expected: str = "a YAML mapping") -> dict:
    """The mapping at the top of the YAML file ``path``; ``what`` names the file in errors."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path}: cannot be read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path}: not valid YAML ({_yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: expected {expected}, got {type(data).__name__}")
    return data


def _yaml_problem(exc) -> str:
    """PyYAML's multi-line message as one line: where, then what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())

"""The compression pre-step of ACBench (installed as ``lm_eval_acbench.compress``).

``load_recipe`` turns a built-in name, a YAML file or a dict into a typed ``Recipe``;
``compress_model`` runs it with llmcompressor and writes an HF folder in compressed-tensors
format with ``acbench_manifest.json`` beside the weights. See docs/compress.md.
"""

from .recipe import BUILTIN_RECIPES, METHODS, Recipe, load_recipe


def compress_model(*args, **kwargs):
    """See :func:`lm_eval_acbench.compress.runner.compress_model` (imported lazily)."""
    from .runner import compress_model as _impl

    return _impl(*args, **kwargs)


__all__ = ["BUILTIN_RECIPES", "METHODS", "Recipe", "compress_model", "load_recipe"]

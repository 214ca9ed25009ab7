"""Prompt builders and process_results hooks for lm-eval tasks, one module per capability."""

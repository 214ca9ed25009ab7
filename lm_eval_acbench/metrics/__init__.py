"""Pure scorers over plain data (strings, lists, numpy arrays): no I/O, no model, no torch, no lm-eval."""

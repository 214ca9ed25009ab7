"""Real-world environments for multi-turn episodes, one module each, one small protocol."""

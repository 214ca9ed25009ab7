"""One module per ``acbench`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""

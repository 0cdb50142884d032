"""The `mlpipeline` command: each component as a subcommand, and `demo`, the whole loop on one machine."""

"""mlpipeline_cli."""

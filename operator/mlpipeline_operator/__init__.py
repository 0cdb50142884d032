"""operator/mlpipeline_operator."""

"""Vertex AI adapters of the training side: Model Registry versions/aliases, PipelineJob builder."""

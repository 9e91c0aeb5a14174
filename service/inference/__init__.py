"""Serving a model: the inference answer every predict path encodes, the model cache, model
references (ids, names, aliases, versions), compute placement and activation curves."""

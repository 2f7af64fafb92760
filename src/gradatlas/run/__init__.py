"""One run, from its config to its record: models, data, probes, the training loop."""

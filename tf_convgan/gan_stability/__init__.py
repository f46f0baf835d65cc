"""GAN_stability interoperability: PyTorch checkpoints without PyTorch, YAML configs, the importer."""

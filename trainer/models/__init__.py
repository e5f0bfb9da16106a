"""Training-only modules (discriminators); pure nn.Module code."""

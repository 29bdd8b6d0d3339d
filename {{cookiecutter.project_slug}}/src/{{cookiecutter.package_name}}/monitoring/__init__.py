"""Monitoring: windows of production traffic checked against the training data."""

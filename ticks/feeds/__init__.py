"""Decoders for the broker feeds' wire formats."""

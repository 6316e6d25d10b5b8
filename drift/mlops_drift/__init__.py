"""Drift monitoring: baseline statistics recorded at training time and the comparisons made later."""

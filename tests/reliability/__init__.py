"""Reliability suite: faults at every ADD step, concurrent ADD/DEL, hostile input."""

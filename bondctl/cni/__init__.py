"""The bond CNI plugin."""

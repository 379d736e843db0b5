"""The CNI spec versions this plugin speaks (VERSION answers with these, without importing
anything else)."""

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]

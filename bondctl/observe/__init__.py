"""Every pod's bond seen from the node: `bondctl pods`, the failover monitor and its metrics.

Nothing here is on the CNI plugin's path: the plugin writes the state records this package
reads, and never imports it.
"""

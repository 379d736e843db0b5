"""Test harness for the kernel suite: where bonds can be made (natively or in User-Mode Linux),
throw-away network namespaces, and the replay of in-guest results into the outer pytest run."""

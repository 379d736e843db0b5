"""bondctl's benchmark suite: `python -m bench [--short] [--uml] [--out FILE] [--markdown FILE]`.

Native start-up (VERSION, the ADD path up to its first kernel call, imports, bondctl), and, in a
kernel with bonding (User-Mode Linux here), ADD+DEL latency per backend against floors, the
processes each command spawns, and scale. See docs/performance.md.
"""

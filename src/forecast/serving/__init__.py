"""The HTTP service (BentoML), a thin layer over the domain code."""

"""cloudyeo: cloud-aware Earth-observation datasets and benchmarks."""

__version__ = "0.1.0"

"""CT emphysema biomarker (LAA%-950, Perc15, lung volume) with classic HU segmentation."""
from __future__ import annotations

__version__ = "0.1.0"
SCHEMA_VERSION = "1.0"

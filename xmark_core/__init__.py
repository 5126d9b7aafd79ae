"""X-Mark: invisible per-image watermarks for chest X-ray datasets and black-box
ownership verification; StealthMark for segmentation models.

Import the parts you need from their modules, e.g. ``xmark_core.data.phantom``.
"""

__version__ = "0.1.0"

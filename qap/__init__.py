"""psqs.qap: stage 1, quantization-aware pruning (QAP) of the jet tagger.

Importing this package is cheap; TensorFlow is imported only by the functions that need it.
"""
from .artifact import ModelDir, load_model

__all__ = ["ModelDir", "load_model"]

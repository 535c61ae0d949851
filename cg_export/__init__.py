"""cg-export: take a CycleGAN generator from training to a fast, verified engine on an edge device.

Importing the package is cheap and needs neither torch nor onnxruntime; each subpackage imports what it uses.
"""

__version__ = "0.1.0"

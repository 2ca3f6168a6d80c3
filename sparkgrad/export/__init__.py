"""safetensors export and import with PyTorch-compatible names."""

from sparkgrad.export.safetensors_io import load_safetensors, save_safetensors, tensor_digest

__all__ = ["load_safetensors", "save_safetensors", "tensor_digest"]

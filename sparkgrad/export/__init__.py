"""safetensors export and import with PyTorch-compatible names."""

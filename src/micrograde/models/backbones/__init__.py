"""The backbone registry, offline pretrained weights, the torchvision shim, trunk/tail adapters."""

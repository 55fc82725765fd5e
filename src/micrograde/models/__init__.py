"""Networks and graders (torch, timm): backbones, training, calibration, checkpoints, inference."""

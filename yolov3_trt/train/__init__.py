"""Training: Darknet's YOLOv3 loss, the loop (EMA, AMP, accumulation, DDP) and its CLI."""

"""Model -> ONNX: the raw graph from torch, and the end-to-end graph appended with onnx ops."""

"""gsvd: a live voice engine for GPT-SoVITS voices.

Sub-packages (each its own top-level folder in the repository):
``gsvd.engine`` (models, text frontend, runtime, public synthesis API),
``gsvd.daemon`` (gRPC/HTTP server), ``gsvd.clients`` (Python client, playback),
``gsvd.v1`` (generated protocol stubs), ``gsvd.trt_build`` (ONNX/TensorRT),
``gsvd.trainer`` (enrollment from videos).
"""

__version__ = "0.1.0"

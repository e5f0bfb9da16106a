"""trt_build"""

"""gsvd.v1: generated protocol stubs (see gsvd.proto); regenerate with `python -m gsvd.v1.regen`."""

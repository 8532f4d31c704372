"""The cuBLASLt probe: an LD_PRELOAD interposer (interpose.c) and its torch driver (record.py)."""

"""Formats: the 8-bit formats as data (`info`), rounding modes, float <-> FP8 conversion."""

"""avatarlm: real-time streaming autoregressive video generation for interactive digital humans."""

__version__ = "0.1.0"

"""findspots: DIALS-compatible spot finding for X-ray diffraction images."""

__version__ = "0.1.0"

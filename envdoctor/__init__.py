"""envdoctor: the doctor for deep-learning environments."""

__version__ = "0.1.0"

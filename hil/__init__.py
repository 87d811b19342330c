"""hil: a hardware-in-the-loop test framework for LoRaWAN devices."""

__version__ = "0.1.0"

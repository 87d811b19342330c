"""The virtual DUT: firmware of a LoRaWAN mains relay actuator (the reference relay node)."""

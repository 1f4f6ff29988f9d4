"""Drop-ins for the Mahavishnu services (seeds 001 and 002)."""

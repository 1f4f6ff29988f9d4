"""Drop-in APIs of the services seawall was made from: change one import line."""

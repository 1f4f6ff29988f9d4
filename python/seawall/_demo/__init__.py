"""The parts of ``python -m seawall demo`` (see :mod:`seawall.demo`): the server, the clients, the
display. Private: nothing here is API.
"""
